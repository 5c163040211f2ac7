"""`tiffin models ...` as an operator runs it, on a store of its own (`version_home`):
promotion through the gate, rollback, pins, history, and offline archives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, stored_versions

OUTPUTS = """
import json, sys
import numpy as np
from tiffin import families
_, predictor = families.load(sys.argv[1])
pixels = np.random.default_rng(0).integers(0, 256, (100, 28, 28), dtype=np.uint8)
print(json.dumps(np.asarray(predictor(pixels)).tolist()))
"""


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENTOML_HOME": str(home), "TIFFIN_ALIASES_FILE": str(home / "tiffin-aliases.json")}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def tiffin(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(home, "-m", "tiffin.client.cli", *args, check=check)


@pytest.fixture(scope="module")
def fashion(version_home) -> dict[str, float]:
    """{version: test_accuracy} of the test store's fashion-cnn and the two the fixture added."""
    return {v["version"]: v["metrics"]["test_accuracy"] for v in stored_versions(version_home, "fashion-cnn")[:3]}


def test_promote_through_the_gate_rollback_pin_and_history(version_home, fashion):
    home = version_home
    tiffin(home, "models", "pin", "fashion-cnn", "--off", check=False)  # nothing else has moved it
    bad = min(fashion, key=fashion.get)
    worse, better = sorted((v for v in fashion if v != bad), key=fashion.get)
    assert fashion[bad] < 0.2 < fashion[worse], "the shuffled-label version is the bad one"

    tiffin(home, "models", "promote", "fashion-cnn", worse, "--why", "first")
    tiffin(home, "models", "promote", "fashion-cnn", better[:6])  # a unique prefix names a version
    refused = tiffin(home, "models", "promote", "fashion-cnn", bad, check=False)
    assert refused.returncode == 1
    assert f"{fashion[bad]:.4f}" in refused.stderr and f"{fashion[better]:.4f}" in refused.stderr
    shown = json.loads(tiffin(home, "--json", "models", "show", "fashion-cnn@production").stdout)
    assert shown["version"] == better

    tiffin(home, "models", "promote", "fashion-cnn", bad, "--force", "--why", "drill")
    assert json.loads(tiffin(home, "--json", "models", "show", "fashion-cnn@production").stdout)["version"] == bad
    tiffin(home, "models", "rollback", "fashion-cnn")
    tiffin(home, "models", "rollback", "fashion-cnn")
    assert json.loads(tiffin(home, "--json", "models", "show", "fashion-cnn@production").stdout)["version"] == worse
    empty = tiffin(home, "models", "rollback", "fashion-cnn", check=False)
    assert empty.returncode == 1 and "nothing to roll back to" in empty.stderr

    tiffin(home, "models", "pin", "fashion-cnn", "--why", "freeze for the audit")
    pinned = tiffin(home, "models", "promote", "fashion-cnn", better, check=False)
    assert pinned.returncode == 1 and "pinned" in pinned.stderr and "freeze for the audit" in pinned.stderr
    tiffin(home, "models", "pin", "fashion-cnn", "--off")
    tiffin(home, "models", "promote", "fashion-cnn", better, "--alias", "staging")

    for reserved in ("latest", "v2", "Prod!"):
        refused = tiffin(home, "models", "promote", "fashion-cnn", better, "--alias", reserved, check=False)
        assert refused.returncode == 1 and "alias" in refused.stderr

    moves = json.loads(tiffin(home, "--json", "models", "history", "fashion-cnn").stdout)
    assert [(m["action"], m["alias"], m["to"]) for m in moves[-8:]] == [
        ("promote", "production", worse),
        ("promote", "production", better),
        ("promote", "production", bad),
        ("rollback", "production", better),
        ("rollback", "production", worse),
        ("pin", "production", worse),
        ("unpin", "production", worse),
        ("promote", "staging", better),
    ]
    assert moves[-8]["why"] == "first" and "forced past the gate" in moves[-6]["why"]
    assert all("@" in m["who"] for m in moves) and [m["revision"] for m in moves] == sorted(m["revision"] for m in moves)


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_export_delete_import_gives_the_same_files_and_outputs(version_home, fashion, tmp_path):
    home = version_home
    version = max(fashion, key=fashion.get)
    tag = f"fashion-cnn:{version}"
    folder = home / "models" / "fashion-cnn" / version
    before, outputs = _digests(folder), run(home, "-c", OUTPUTS, tag).stdout
    archive = tmp_path / "fashion.tar.gz"
    said = tiffin(home, "models", "export", tag, str(archive)).stdout
    assert hashlib.sha256(archive.read_bytes()).hexdigest() in said

    run(home, "-m", "bentoml", "models", "delete", "-y", tag)
    assert not folder.exists()
    tiffin(home, "models", "import", str(archive))
    assert _digests(folder) == before
    assert run(home, "-c", OUTPUTS, tag).stdout == outputs

    again = tiffin(home, "models", "import", str(archive), check=False)
    assert again.returncode == 1 and "already in the store" in again.stderr


def _rewrite(archive: Path, out: Path, change) -> None:
    """Copy `archive` to `out`, passing each member's (info, bytes) through `change`."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            for info, body in change(member, data):
                dst.addfile(info, io.BytesIO(body) if body is not None else None)


def test_a_changed_archive_is_refused(version_home, fashion, tmp_path):
    home = version_home
    version = min(fashion, key=fashion.get)
    archive = tmp_path / "bad.tar.gz"
    tiffin(home, "models", "export", f"fashion-cnn:{version}", str(archive))
    run(home, "-m", "bentoml", "models", "delete", "-y", f"fashion-cnn:{version}")

    def flip_a_weight(info, data):
        if info.name.endswith("weights.safetensors"):
            data = data[:-1] + bytes([data[-1] ^ 1])
        yield info, data

    def add_a_file(info, data):
        yield info, data
        if info.name == "tiffin-manifest.json":
            extra = tarfile.TarInfo("model/extra.py")
            extra.size = 12
            yield extra, b"print('hi')\n"

    def escape(info, data):
        yield info, data
        if info.name == "tiffin-manifest.json":
            link = tarfile.TarInfo("model/escape")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            yield link, None

    for change, says in ((flip_a_weight, "weights.safetensors has sha256"), (add_a_file, "extra.py is not in the manifest"),
                         (escape, "cannot read")):  # fmt: skip
        changed = tmp_path / f"{change.__name__}.tar.gz"
        _rewrite(archive, changed, change)
        refused = tiffin(home, "models", "import", str(changed), check=False)
        assert refused.returncode == 1 and says in refused.stderr, refused.stderr
        assert not (home / "models" / "fashion-cnn" / version).exists()
    tiffin(home, "models", "import", str(archive))  # the untouched archive still goes in
