"""Key entries, scopes, quotas and the keys file, without a server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from tiffin.api import keys
from tiffin.config import SettingsError


def _hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_a_key_is_checked_by_digest_scope_and_quota():
    ring = keys.Keyring(keys.parse_env(f"a:{_hex('k1')}:infer:1/2 b:{_hex('k2')}:metrics+admin"))
    assert ring.check("k1", "infer").allowed and ring.check("k1", "infer").allowed
    third = ring.check("k1", "infer")
    assert third.status == 429 and 0 < third.retry_after <= 1.0 and third.limit == 2
    assert ring.check("k2", "infer").status == 403 and ring.check("k2", "admin").allowed
    assert ring.check("k3", "infer").status == 401 and ring.check(None, "infer").status == 401


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("a:abc:infer", "64 hex digits"),
        (f"a:{_hex('k')}:root", "each must be one of infer, metrics, admin"),
        (f"a:{_hex('k')}", "entry 1 is not NAME:SHA256:SCOPES"),
        (f"a:{_hex('k')}:infer:fast", "not RATE/BURST"),
        (f"a:{_hex('k')}:infer:0/1", "rate > 0"),
    ],
)
def test_a_bad_entry_is_refused_by_name_without_echoing_it(value, fragment):
    with pytest.raises(SettingsError, match="TIFFIN_API_KEYS") as caught:
        keys.parse_env(value)
    assert fragment in str(caught.value) and _hex("k") not in str(caught.value)


def test_the_keys_file_is_reread_when_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"name": "old", "sha256": _hex("k-old"), "scopes": ["infer"]}]))
    ring = keys.Keyring(keys.parse_file(path), path)
    assert ring.check("k-old", "infer").allowed
    path.write_text(json.dumps([{"name": "new", "sha256": _hex("k-new"), "scopes": ["infer"]}]))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    ring._looked -= 2  # a second has passed since the last look
    assert ring.check("k-new", "infer").allowed and ring.check("k-old", "infer").status == 401
    path.write_text("{broken")  # a bad file keeps the keys there were
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
    ring._looked -= 2
    assert ring.check("k-new", "infer").allowed


def test_the_header_forms():
    assert keys.presented({b"authorization": b"Bearer abc"}) == "abc"
    assert keys.presented({b"authorization": b"bearer  abc "}) == "abc"
    assert keys.presented({b"x-api-key": b"xyz"}) == "xyz"
    assert keys.presented({"authorization": "Bearer g"}) == "g"  # gRPC metadata
    assert keys.presented({b"authorization": b"Basic abc"}) is None


def test_new_key_command_prints_a_working_entry():
    out = subprocess.run(
        [sys.executable, "-m", "tiffin.api.keys", "new", "ci", "--scopes", "infer,metrics", "--rate", "5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key = out.split("not stored): ")[1].split()[0]
    entry = out.split("TIFFIN_API_KEYS entry: ")[1].strip()
    [parsed] = keys.parse_env(entry)
    assert parsed.name == "ci" and parsed.scopes == {"infer", "metrics"} and parsed.rate == 5
    assert keys.Keyring([parsed]).check(key, "metrics").allowed
