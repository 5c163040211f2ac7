"""Traffic between versions of one model: integer weights (share = w / sum), sticky by the
hash of a request header the split names (e.g. x-user-id), and an override header
(`x-tiffin-version`) that asks for one served version by name.

The split lives in the alias book (`traffic`, beside `aliases`), so every worker learns of it
as it learns of an alias move (tiffin/versions/follow.py), and is applied in the model's
backend (`InProcess.predict`): every front end (typed routes, OIP REST and gRPC) gets it, and
each answer names the version that made it. A request's headers reach the backend through
`ROUTE`, a context variable the front ends set for the request's task.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# On a request: answer with this served version (VERSION or NAME:VERSION); on every typed
# answer: the version that made it.
HEADER = b"x-tiffin-version"
ROUTE: ContextVar[Mapping[bytes, bytes] | None] = ContextVar("tiffin_route", default=None)


class NotServed(LookupError):
    """The request asks for a version this server does not serve; the message names those it does."""


def asked_version(headers: Mapping[bytes, bytes] | None, model: str) -> str | None:
    """The version of `model` the request asks for: `VERSION`, or `NAME:VERSION` naming `model`
    (a `NAME:VERSION` of another model asks nothing of this one)."""
    raw = headers.get(HEADER) if headers else None
    if not raw:
        return None
    name, _, version = raw.decode("latin-1").strip().rpartition(":")
    if name and name != model:
        return None
    return version[:128] or None


@contextlib.contextmanager
def without_override() -> Iterator[None]:
    """For a second model one request calls (the cascade's large tier): the same headers (a sticky
    key still holds) without the version asked of the first."""
    headers = ROUTE.get()
    token = ROUTE.set({k: v for k, v in headers.items() if k != HEADER} if headers else headers)
    try:
        yield
    finally:
        ROUTE.reset(token)


def check_served(version: str, served: list[str]) -> None:
    if version not in served:
        raise NotServed(f"x-tiffin-version asks for {version!r}, which is not served here; served: {', '.join(served)}")


@dataclass(frozen=True)
class Split:
    """`lanes`: a backend per version (`Any`: tiffin.runtime.backends.InProcess); `weights`:
    version -> weight (0 allowed: reachable only by the override)."""

    lanes: Mapping[str, Any]
    weights: Mapping[str, int]
    sticky: bytes | None = None  # lower-case header name

    def __post_init__(self) -> None:
        live = [(v, w) for v, w in self.weights.items() if w > 0]
        if not live:
            raise ValueError("a split needs at least one version with a weight above 0")
        object.__setattr__(self, "_live", live)
        object.__setattr__(self, "_total", sum(w for _, w in live))

    def choose(self, headers: Mapping[bytes, bytes] | None, model: str) -> Any:
        asked = asked_version(headers, model)
        if asked is not None:
            lane = self.lanes.get(asked)
            if lane is None:
                check_served(asked, list(self.lanes))
            return lane
        key = headers.get(self.sticky) if headers and self.sticky else None
        if key:  # the same key, the same version, in every worker and replica (no per-process seed)
            point = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % self._total
        else:
            point = random.randrange(self._total)
        for version, weight in self._live:
            if point < weight:
                return self.lanes[version]
            point -= weight
        return self.lanes[self._live[-1][0]]  # not reached


_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def check_sticky(name: str | None) -> str | None:
    if name is None:
        return None
    if not _HEADER_NAME.match(name.lower()) or name.lower() == HEADER.decode():
        raise ValueError(f"sticky header {name!r}: name a request header such as x-user-id (letters, digits, -)")
    return name.lower()


def check_weights(weights: Mapping[str, Any]) -> dict[str, int]:
    """What the book accepts: whole numbers from 0 to 1,000,000, at least one above 0."""
    out = {}
    for version, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 1_000_000:
            raise ValueError(f"weight of {version!r} is {weight!r}: use a whole number from 0 to 1000000")
        out[str(version)] = weight
    if not any(out.values()):
        raise ValueError("a split needs at least one version with a weight above 0")
    return out
