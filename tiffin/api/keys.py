"""API keys, scopes and quotas for every surface (typed HTTP, OIP REST and gRPC, the hot path,
/metrics).

A key is a random string the caller sends as `Authorization: Bearer <key>` or
`X-API-Key: <key>` (gRPC: the same names as call metadata). The server holds only each key's
SHA-256 digest, its scopes (`infer`, `metrics`, `admin`) and an optional quota (a token
bucket: `rate` requests per second, `burst` at once), from TIFFIN_API_KEYS or from the JSON
file TIFFIN_API_KEYS_FILE names (re-read when it changes, so keys rotate without a restart).
Neither set: the API is open, and the service says so once at start-up.

    TIFFIN_API_KEYS="ci:<sha256 hex>:infer+metrics:50/100, ops:<sha256 hex>:admin+metrics"
    [{"name": "ci", "sha256": "<hex>", "scopes": ["infer", "metrics"], "rate": 50, "burst": 100}]

`python -m tiffin.api.keys new NAME --scopes infer,metrics [--rate 50 --burst 100]` makes a
key, prints it once and the entry to configure. No key or digest is ever logged.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tiffin.config import SettingsError, settings

log = logging.getLogger("tiffin")
SCOPES = ("infer", "metrics", "admin")
KEY_SCOPE = "tiffin.key"  # the ASGI scope entry where the front door leaves the checked key's name (admin routes)


@dataclass
class Key:
    name: str
    digest: bytes  # sha256 of the key
    scopes: frozenset[str]
    rate: float | None = None  # requests per second; None: no quota
    burst: float = 1.0
    _tokens: float = field(default=0.0, repr=False)
    _at: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._tokens, self._at = self.burst, time.monotonic()

    def take(self) -> float:
        """0 when the quota allows one more request now, else the seconds until it will."""
        if self.rate is None:
            return 0.0
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


@dataclass(frozen=True)
class Decision:
    """What to answer: `status` 0 (go on), 401, 403 or 429, with the key's name when known."""

    status: int
    message: str = ""
    key: str = ""
    retry_after: float = 0.0
    scope: str = ""
    limit: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.status == 0


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _entry(where: str, name: str, hexdigest: str, scopes, rate=None, burst=None) -> Key:
    # Messages name the entry, never its digest.
    try:
        raw = bytes.fromhex(hexdigest)
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SettingsError(f"{where}: key {name!r} needs a sha256 digest of 64 hex digits")
    scopes = frozenset(scopes)
    if not scopes or scopes - set(SCOPES):
        raise SettingsError(f"{where}: key {name!r} has scopes {sorted(scopes)}; each must be one of {', '.join(SCOPES)}")
    if rate is not None and (float(rate) <= 0 or float(burst if burst is not None else rate) < 1):
        raise SettingsError(f"{where}: key {name!r} needs a rate > 0 and a burst >= 1")
    rate = None if rate is None else float(rate)
    return Key(name, raw, scopes, rate, float(burst if burst is not None else max(1.0, rate or 1.0)))


def parse_env(value: str) -> list[Key]:
    """TIFFIN_API_KEYS: entries NAME:SHA256:SCOPE+SCOPE[:RATE/BURST], by commas or whitespace."""
    keys = []
    for i, item in enumerate(value.replace(",", " ").split(), 1):
        parts = item.split(":")
        if len(parts) not in (3, 4):
            raise SettingsError(f"TIFFIN_API_KEYS: entry {i} is not NAME:SHA256:SCOPES[:RATE/BURST]")
        rate = burst = None
        if len(parts) == 4:
            try:
                rate, burst = (float(x) for x in parts[3].split("/"))
            except ValueError:
                raise SettingsError(f"TIFFIN_API_KEYS: entry {i} ({parts[0]!r}) has a quota that is not RATE/BURST") from None
        keys.append(_entry("TIFFIN_API_KEYS", parts[0], parts[1], parts[2].split("+"), rate, burst))
    return keys


def parse_file(path: Path) -> list[Key]:
    where = f"TIFFIN_API_KEYS_FILE ({path})"
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{where}: cannot be read as JSON ({type(exc).__name__})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SettingsError(f"{where}: expected a list of objects with name, sha256, scopes[, rate, burst]")
    return [
        _entry(where, str(e.get("name", f"#{i}")), e.get("sha256"), e.get("scopes") or [], e.get("rate"), e.get("burst"))
        for i, e in enumerate(entries, 1)
    ]


class Keyring:
    """The keys a service accepts; `check` is the one question every surface asks."""

    def __init__(self, keys: list[Key], path: Path | None = None):
        self._keys, self._path, self._lock = keys, path, threading.Lock()
        self._mtime = path.stat().st_mtime_ns if path is not None else None
        self._looked = time.monotonic()

    @classmethod
    def from_settings(cls) -> Keyring | None:
        """None (open) when neither variable is set."""
        config = settings()
        keys = parse_env(config.api_keys) if config.api_keys else []
        path = Path(config.api_keys_file) if config.api_keys_file else None
        if path is not None:
            keys += parse_file(path)
        if not keys and path is None:
            return None
        return cls(keys, path)

    def _reload(self) -> None:
        """Re-reads the keys file when it changed (looked at once a second at most). A file
        that cannot be read keeps the keys it had, and says why once."""
        now = time.monotonic()
        if self._path is None or now - self._looked < 1.0:
            return
        self._looked = now
        try:
            mtime = self._path.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            env = parse_env(settings().api_keys) if settings().api_keys else []
            self._keys = env + parse_file(self._path)
            log.info("API keys reloaded from %s: %d key(s)", self._path, len(self._keys))
        except SettingsError as exc:
            log.error("API keys file not reloaded, the previous keys stay: %s", exc)

    def check(self, presented: str | None, scope: str) -> Decision:
        """Is `presented` (the key as sent, or None) allowed `scope` now?"""
        if not presented:
            return Decision(401, f"this endpoint needs an API key with scope {scope}: send Authorization: Bearer <key>")
        with self._lock:
            self._reload()
            wanted = digest(presented)
            found = None
            for key in self._keys:  # every digest is compared, in constant time, found or not
                if hmac.compare_digest(key.digest, wanted):
                    found = key
            if found is None:
                return Decision(401, "the API key is not valid", scope=scope)
            if scope not in found.scopes:
                return Decision(403, f"the API key lacks scope {scope}", found.name, scope=scope)
            wait = found.take()
        if wait:
            limit = found.burst
            return Decision(
                429, f"quota of key {found.name!r} used up; try again in {wait:.2f} s", found.name, wait, scope, limit
            )
        return Decision(0, key=found.name, scope=scope)


@functools.cache
def keyring() -> Keyring | None:
    """This process's keys (one quota per key across its surfaces); None: open, said once."""
    ring = Keyring.from_settings()
    if ring is None:
        log.warning(
            "no API keys are set (TIFFIN_API_KEYS, TIFFIN_API_KEYS_FILE): every endpoint is open to anyone who reaches it"
        )
    return ring


def presented(headers: dict[bytes, bytes] | dict[str, str]) -> str | None:
    """The key in `Authorization: Bearer ...` or `X-API-Key`, from HTTP headers (bytes, lower
    case) or gRPC metadata (str)."""
    get = headers.get
    auth = get(b"authorization") if b"authorization" in headers else get("authorization")
    if isinstance(auth, bytes):
        auth = auth.decode("latin-1")
    if auth:
        kind, _, value = auth.strip().partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
    key = get(b"x-api-key") if b"x-api-key" in headers else get("x-api-key")
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    return key.strip() if key else None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tiffin.api.keys", description="make an API key for tiffin")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="a new key: printed once, with the entry to configure")
    new.add_argument("name")
    new.add_argument("--scopes", default="infer", help=f"comma list of {', '.join(SCOPES)}")
    new.add_argument("--rate", type=float, help="requests per second (with --burst): a quota")
    new.add_argument("--burst", type=float)
    args = parser.parse_args()
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    key = "tfn_" + secrets.token_urlsafe(32)
    _entry("--scopes", args.name, hashlib.sha256(key.encode()).hexdigest(), scopes, args.rate, args.burst)  # checks it
    quota = f":{args.rate:g}/{(args.burst or max(1.0, args.rate)):g}" if args.rate else ""
    print(f"key (give it to the caller; it is not stored): {key}")
    print(f"TIFFIN_API_KEYS entry: {args.name}:{hashlib.sha256(key.encode()).hexdigest()}:{'+'.join(scopes)}{quota}")


if __name__ == "__main__":
    main()
