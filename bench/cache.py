"""`make bench`'s response-cache section: the image route and the MiniLM tier at 64 clients,
cache off and on (TIFFIN_CACHE=all) in alternating servers, with every input distinct (0 %
hits: what the lookup costs) and with 90 % of requests repeating one of 50 inputs; and, cache
on, the image route with every request repeating one of them (the route's ceiling).
(wrk sends the body sequence in turn; with more than one wrk thread each thread starts it
from the top, which is one thread on this 2-core machine.)"""

from __future__ import annotations

import functools
import io
import json
import random

from bench.points import multipart, run_point
from bench.wrk import HttpLoad

SEQUENCE = 60_000  # bodies per sequence: more than a point sends, so "distinct" stays distinct


def _png(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _sequence(make, repeated: float, hot: int = 50, n: int = SEQUENCE) -> list[bytes]:
    rng = random.Random(7)
    hot_set = [make(i) for i in range(hot)]
    return [hot_set[rng.randrange(hot)] if rng.random() < repeated else make(hot + i) for i in range(n)]


def _image_body(seed: int) -> bytes:
    return multipart("image", "x.png", "image/png", _png(seed))[0]


def _text_body(seed: int) -> bytes:
    return json.dumps({"text": f"review {seed}: a film with moments, number {seed * 7919}", "tier": "large"}).encode()


@functools.cache
def _bodies(n: int) -> dict[tuple[str, float], list[bytes]]:
    out = {}
    for share in (0.0, 0.9, 1.0):
        out[("image", share)] = _sequence(_image_body, share, n=n)
    for share in (0.0, 0.9):
        out[("text large", share)] = _sequence(_text_body, share, n=max(n // 10, 200))  # MiniLM: ~300/s here
    return out


def loads(url: str, n: int = SEQUENCE) -> dict[tuple[str, float], HttpLoad]:
    form = multipart("image", "x.png", "image/png", b"")[1]
    paths = {"image": ("/classify_image", form), "text large": ("/classify_text", {"Content-Type": "application/json"})}
    return {
        (route, share): HttpLoad(url + paths[route][0], bodies[0], paths[route][1], bodies=bodies)
        for (route, share), bodies in _bodies(n).items()
    }


async def cache_gain(seconds: float, rounds: int = 2) -> list[dict]:
    """Rows of (route, hits share, cache off / on req/s, ratio): best of `rounds` each. The
    sequences are sized to the points (~6,000 images a second at most, warm-up included)."""
    from tiffin.deploy.serve import Server

    n = min(SEQUENCE, max(2_000, int(6_000 * (seconds + 1))))

    best: dict[tuple[str, float, str], float] = {}
    for _ in range(rounds):
        for mode, env in (("off", {"TIFFIN_CACHE": "off"}), ("on", {"TIFFIN_CACHE": "all"})):
            with Server(env=env, ready_timeout=240) as server:
                for (route, share), load in loads(server.url, n).items():
                    if share == 1.0 and mode == "off":
                        continue
                    row = await run_point(f"{route} {share:.0%} repeats, cache {mode}", load, 64, seconds, server.proc.pid)
                    key = (route, share, mode)
                    best[key] = max(best.get(key, 0.0), row["rps"])
    rows = []
    for route in ("image", "text large"):
        for share, goal in ((0.0, 0.97), (0.9, 3.0)):
            off, on = best[(route, share, "off")], best[(route, share, "on")]
            rows.append(
                {
                    "route": route,
                    "what": f"req/s at c=64, {share:.0%} repeated inputs: cache on / off",
                    "off": off,
                    "on": on,
                    "value": round(on / max(off, 1e-9), 2),
                    "goal": goal,
                }
            )
    # every input repeated: no decode, no model, only the route's HTTP and multipart work (its
    # ceiling), which bounds what any share of hits can gain over the cache off
    off = best[("image", 0.9, "off")]
    rows.append(
        {
            "route": "image",
            "what": "req/s at c=64, every input repeated (the route's ceiling) / cache off",
            "off": off,
            "on": best[("image", 1.0, "on")],
            "value": round(best[("image", 1.0, "on")] / max(off, 1e-9), 2),
            "goal": None,
        }
    )
    return rows
