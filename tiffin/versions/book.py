"""The alias book: which version of each model an alias (`production`, `staging`, ...) names,
what it named before, and who moved it, when and why.

BentoML's labels cannot change after a model is saved, so aliases live in one small JSON file
beside the store (`$BENTOML_HOME/tiffin-aliases.json`, or TIFFIN_ALIASES_FILE):

    {"revision": 3,
     "aliases": {"fashion-cnn": {"production": {"version": "x7k2", "previous": ["a1b2"], "pin": null}}},
     "traffic": {"fashion-cnn": {"weights": {"x7k2": 90, "c3d4": 10}, "sticky": "x-user-id"}},
     "shadow": {"fashion-cnn": {"version": "c3d4", "percent": 100}},
     "history": [{"revision": 3, "at": "...", "who": "ana@host", "model": "fashion-cnn",
                  "alias": "production", "action": "promote", "from": "a1b2", "to": "x7k2", "why": "..."}]}

Every change takes an exclusive lock, bumps `revision` and replaces the file atomically, so a
reader (each serving worker polls it) sees the old book or the new one, never half of one.
Imports only the standard library: the client CLI and the settings can read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_ALIAS = "production"
HISTORY_KEPT = 1000  # moves kept in the file; older ones are dropped
# MLflow's rule: `latest` and v<digits> read as versions, so they cannot be aliases.
_RESERVED = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class AliasError(ValueError):
    """An alias move that cannot be made as asked; the message says why and what to do."""


def check_alias(alias: str) -> str:
    if _RESERVED.match(alias):
        raise AliasError(f"{alias!r} cannot be an alias: 'latest' and v<digits> name versions (pick e.g. production)")
    if not _ALIAS.match(alias):
        raise AliasError(f"{alias!r} is not an alias name: use a lower-case letter, then up to 62 of a-z 0-9 _ -")
    return alias


def default_path() -> Path:
    """TIFFIN_ALIASES_FILE, else beside BentoML's store (read without importing BentoML)."""
    from tiffin.config import settings

    named = settings().aliases_file
    if named:
        return Path(named)
    home = os.environ.get("BENTOML_HOME") or os.path.join(os.path.expanduser("~"), "bentoml")
    return Path(home) / "tiffin-aliases.json"


def who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid{os.getuid()}@{socket.gethostname()}"


@dataclass(frozen=True)
class Holder:
    version: str
    previous: tuple[str, ...]  # earlier holders, most recent last: what `rollback` returns to
    pin: dict | None  # {"who", "at", "why"} while pinned: promote and rollback refuse


class Book:
    """One alias file. Reads are lock-free (the file is replaced whole); `change()` serialises
    writers across processes with an flock on a sibling `.lock` file."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else default_path()

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"revision": 0, "aliases": {}, "history": []}
        except (OSError, ValueError) as exc:
            raise AliasError(f"cannot read the alias book {self.path}: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("aliases"), dict):
            raise AliasError(f"{self.path} is not an alias book (no 'aliases' object)")
        return data

    def stamp(self) -> tuple[int, int] | None:
        """What changes when the file does (cheap enough to poll every second)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ino

    def holder(self, model: str, alias: str = DEFAULT_ALIAS, data: dict | None = None) -> Holder | None:
        entry = (data or self.read())["aliases"].get(model, {}).get(alias)
        if not entry:
            return None
        return Holder(entry["version"], tuple(entry.get("previous", ())), entry.get("pin"))

    def resolve(self, model: str, alias: str = DEFAULT_ALIAS) -> str | None:
        """The version `model@alias` names, or None."""
        held = self.holder(model, alias)
        return held.version if held else None

    def aliases_of(self, model: str, data: dict | None = None) -> dict[str, str]:
        return {a: e["version"] for a, e in (data or self.read())["aliases"].get(model, {}).items()}

    def history(self, model: str | None = None) -> list[dict]:
        return [h for h in self.read()["history"] if model is None or h["model"] == model]

    @contextlib.contextmanager
    def change(self) -> Iterator[dict[str, Any]]:
        """Lock, read, let the caller edit the dict, write it back atomically with the next revision."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            yield data
            data["revision"] = data.get("revision", 0) + 1
            data["history"] = data.get("history", [])[-HISTORY_KEPT:]
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(data, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise

    def move(self, model: str, alias: str, version: str, *, action: str, why: str = "", by: str | None = None) -> dict:
        """Point `model@alias` at `version` (promote): the old holder goes on the rollback stack."""
        check_alias(alias)
        with self.change() as data:
            entry = data["aliases"].setdefault(model, {}).get(alias)
            _refuse_pinned(model, alias, entry)
            before = entry["version"] if entry else None
            if before == version:
                raise AliasError(f"{model}@{alias} already names {version}")
            previous = list(entry.get("previous", ())) if entry else []
            if before:
                previous.append(before)
            data["aliases"][model][alias] = {"version": version, "previous": previous[-HISTORY_KEPT:], "pin": None}
            return record(data, model, alias, action, before, version, why, by)

    def rollback(self, model: str, alias: str = DEFAULT_ALIAS, *, why: str = "", by: str | None = None) -> dict:
        """Return `model@alias` to its previous holder."""
        with self.change() as data:
            entry = data["aliases"].get(model, {}).get(alias)
            if not entry:
                raise AliasError(f"{model} has no alias {alias!r}; nothing to roll back")
            _refuse_pinned(model, alias, entry)
            if not entry.get("previous"):
                raise AliasError(f"{model}@{alias} has had no other version; nothing to roll back to")
            before, after = entry["version"], entry["previous"].pop()
            entry["version"] = after
            return record(data, model, alias, "rollback", before, after, why, by)

    def pin(self, model: str, alias: str, version: str | None, *, why: str = "", by: str | None = None) -> dict:
        """Hold `model@alias` (at `version`, when given, moving it there first) until `unpin`:
        promotion, rollback and automatic canary moves refuse meanwhile."""
        check_alias(alias)
        with self.change() as data:
            entry = data["aliases"].setdefault(model, {}).get(alias)
            before = entry["version"] if entry else None
            if version is None and before is None:
                raise AliasError(f"{model} has no alias {alias!r} to pin; name a version")
            if entry is None:
                entry = data["aliases"][model][alias] = {"version": version, "previous": [], "pin": None}
            elif version is not None and version != before:
                entry["previous"].append(before)
                entry["version"] = version
            entry["pin"] = {"who": by or who(), "at": _now(), "why": why}
            return record(data, model, alias, "pin", before, entry["version"], why, by)

    def traffic(self, model: str, data: dict | None = None) -> dict | None:
        """{"weights": {version: int}, "sticky": header or None} while a split is set."""
        return (data or self.read()).get("traffic", {}).get(model)

    def split(self, model: str, weights: dict[str, int], sticky: str | None, *, why: str = "", by: str | None = None) -> dict:
        """Share `model`'s traffic between versions by weight (see tiffin/versions/traffic.py)."""
        with self.change() as data:
            traffic = data.setdefault("traffic", {})
            before = _shares(traffic.get(model))
            traffic[model] = {"weights": dict(weights), "sticky": sticky}
            return record(data, model, "traffic", "split", before, _shares(traffic[model]), why, by)

    def unsplit(self, model: str, *, why: str = "", by: str | None = None) -> dict:
        with self.change() as data:
            held = data.get("traffic", {}).pop(model, None)
            if held is None:
                raise AliasError(f"{model} has no traffic split")
            return record(data, model, "traffic", "unsplit", _shares(held), "alias", why, by)

    def shadow(self, model: str, data: dict | None = None) -> dict | None:
        """{"version": v, "percent": p} while `model` has a shadow."""
        return (data or self.read()).get("shadow", {}).get(model)

    def set_shadow(self, model: str, version: str, percent: float, *, why: str = "", by: str | None = None) -> dict:
        with self.change() as data:
            shadows = data.setdefault("shadow", {})
            before = shadows.get(model)
            shadows[model] = {"version": version, "percent": percent}
            was = f"{before['version']} {before['percent']:g}%" if before else None
            return record(data, model, "shadow", "shadow", was, f"{version} {percent:g}%", why, by)

    def clear_shadow(self, model: str, *, why: str = "", by: str | None = None) -> dict:
        with self.change() as data:
            held = data.get("shadow", {}).pop(model, None)
            if held is None:
                raise AliasError(f"{model} has no shadow")
            return record(data, model, "shadow", "unshadow", held["version"], "none", why, by)

    def unpin(self, model: str, alias: str, *, why: str = "", by: str | None = None) -> dict:
        with self.change() as data:
            entry = data["aliases"].get(model, {}).get(alias)
            if not entry or not entry.get("pin"):
                raise AliasError(f"{model}@{alias} is not pinned")
            entry["pin"] = None
            return record(data, model, alias, "unpin", entry["version"], entry["version"], why, by)


def _refuse_pinned(model: str, alias: str, entry: dict | None) -> None:
    pin = (entry or {}).get("pin")
    if pin:
        reason = f" ({pin['why']})" if pin.get("why") else ""
        raise AliasError(
            f"{model}@{alias} is pinned to {entry['version']} by {pin['who']} since {pin['at']}{reason};"
            f" `tiffin models pin {model} --off` first"
        )


def _shares(split: dict | None) -> str | None:
    if split is None:
        return None
    text = ",".join(f"{v}={w}" for v, w in split["weights"].items())
    return text + (f" sticky {split['sticky']}" if split.get("sticky") else "")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record(data: dict, model: str, alias: str, action: str, before: str | None, after: str, why: str, by: str | None) -> dict:
    move = {
        "revision": data.get("revision", 0) + 1,
        "at": _now(),
        "who": by or who(),
        "model": model,
        "alias": alias,
        "action": action,
        "from": before,
        "to": after,
        "why": why,
    }
    data.setdefault("history", []).append(move)
    return move
