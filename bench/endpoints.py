"""`make bench`'s endpoint table: every public endpoint family (image, text small, text large,
demand) at each concurrency, on tiffin's all-in-one API (`bentoml serve services.api:Tiffin`,
BentoML's port) and on the peers a user would pick instead, serving the same trained models
with the same preprocessing, side by side in one run:

- FastAPI, one forward per request, 1 uvicorn worker (as its docs show it);
- FastAPI, 2 workers x 1 torch thread (hand-tuned for 2 cores);
- LitServe 0.2.19 with batching (max_batch_size 64, batch_timeout 5 ms; no MiniLM route).

Each tiffin row gets its ratio to the model's raw limit (the best of the raw points measured
in this run) and to the best peer at that concurrency. Then, on tiffin only: a burst test (one
client before, 64 during, one client right after: the lone client's p50 must come back
within 1 s) and an overload point per route (goodput at 512 clients against the route's best).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager

from bench.points import multipart, run_point
from bench.wrk import HttpLoad
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW, EXAMPLE_TEXT, FASHION, TEXT_LARGE, TEXT_SMALL

JSON = {"Content-Type": "application/json"}
MODEL_OF = {"image": FASHION, "text-small": TEXT_SMALL, "text-large": TEXT_LARGE, "demand": "bikeshare-mlp"}


def loads(url: str, png: bytes) -> dict[str, HttpLoad]:
    return {
        "image": HttpLoad(url + "/classify_image", *multipart("image", "i.png", "image/png", png)),
        "text-small": HttpLoad(url + "/classify_text", json.dumps({"text": EXAMPLE_TEXT, "tier": "small"}).encode(), JSON),
        "text-large": HttpLoad(url + "/classify_text", json.dumps({"text": EXAMPLE_TEXT, "tier": "large"}).encode(), JSON),
        "demand": HttpLoad(url + "/predict_demand", json.dumps(EXAMPLE_DEMAND_ROW).encode(), JSON),
    }


@contextmanager
def peer(name: str):
    """Start one peer on a free port; yields (url, pid)."""
    import httpx

    from tiffin.deploy.serve import free_port

    port = free_port()
    env = dict(os.environ)
    if name == "litserve":
        command = [sys.executable, "-m", "bench.baselines.litserve_peer", str(port)]
    else:
        command = [sys.executable, "-m", "uvicorn", "bench.baselines.fastapi_peer:app", "--port", str(port)]
        command += ["--log-level", "warning", "--no-access-log"]
        if name == "fastapi-2w":
            command += ["--workers", "2"]
            env["TIFFIN_TORCH_THREADS"] = "1"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.post(url + "/predict_demand", json=EXAMPLE_DEMAND_ROW, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise TimeoutError(f"peer {name} did not start")
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


PEERS = ("fastapi", "fastapi-2w", "litserve")
SERVES = {"litserve": ("image", "text-small", "demand")}  # the routes a peer has; default: all


async def measure(server, png: bytes, concurrencies: list[int], seconds: float, overload: int) -> dict:
    """The tiffin rows (and the burst and overload checks) against `server`, then each peer's."""
    rows, checks = [], []
    for route, load in loads(server.url, png).items():
        batches = (server.url, "tiffin_model_batch_size", f'model="{MODEL_OF[route]}"')
        for c in concurrencies:
            rows.append(
                await run_point(f"tiffin {route}", load, c, seconds, server.proc.pid, batches, route=route, server="tiffin")
            )
        if overload:
            row = await run_point(f"tiffin {route} overload", load, overload, seconds, server.proc.pid, batches, route=route)
            best = max(r["rps"] for r in rows if r.get("route") == route and r.get("server") == "tiffin")
            checks.append(
                {"route": route, "what": f"goodput at c={overload} / best", "value": round(row["rps"] / best, 3), "goal": 0.9}
            )
            rows.append(row)
        before = await run_point(f"tiffin {route} before burst", load, 1, 2.0, server.proc.pid, route=route)
        await run_point(f"tiffin {route} burst", load, 64, seconds, server.proc.pid, route=route)
        after = await run_point(f"tiffin {route} after burst", load, 1, 1.0, server.proc.pid, route=route)
        checks.append(
            {
                "route": route,
                "what": f"lone client's p50 in the 1 s after a 64-client burst / before ({after['p50_ms']:.2f} / {before['p50_ms']:.2f} ms)",
                "value": round(after["p50_ms"] / max(before["p50_ms"], 1e-6), 2),
                "goal": 1.2,
                "lower_is_better": True,
            }
        )
    return {"rows": rows, "checks": checks}


async def measure_peers(png: bytes, concurrencies: list[int], seconds: float, names=PEERS) -> list[dict]:
    rows = []
    for name in names:
        with peer(name) as (url, pid):
            for route, load in loads(url, png).items():
                if route not in SERVES.get(name, MODEL_OF):
                    continue
                for c in concurrencies:
                    rows.append(await run_point(f"{name} {route}", load, c, seconds, pid, route=route, server=name))
    return rows


def ratios(rows: list[dict], limits: dict[str, float]) -> list[dict]:
    """Adds to each tiffin row its ratio to the raw limit and to the best peer at its point."""
    for r in rows:
        if r.get("server") != "tiffin":
            continue
        limit = limits.get(MODEL_OF[r["route"]])
        r["vs_raw"] = round(r["rps"] / limit, 3) if limit else None
        peers = [p for p in rows if p.get("route") == r["route"] and p.get("server") not in (None, "tiffin")]
        at = [p for p in peers if p["concurrency"] == r["concurrency"]]
        if at:
            best = max(at, key=lambda p: p["rps"])
            r["best_peer"], r["vs_best_peer"] = best["server"], round(r["rps"] / max(best["rps"], 1e-9), 2)
    return rows


async def auth_cost(png: bytes, seconds: float, rounds: int = 2) -> dict:
    """The image route at 64 clients with API keys on (the key in every request) and off, in
    alternating servers: the ratio of their best points."""
    import hashlib
    import secrets

    from tiffin.deploy.serve import Server

    key = "tfn_" + secrets.token_urlsafe(32)
    guarded = {"TIFFIN_API_KEYS": f"bench:{hashlib.sha256(key.encode()).hexdigest()}:infer"}
    best = {"on": 0.0, "off": 0.0}
    for _ in range(rounds):
        for mode, env in (("off", {}), ("on", guarded)):
            with Server(env=env, ready_timeout=240) as server:
                load = loads(server.url, png)["image"]
                if mode == "on":
                    load = HttpLoad(load.url, load.body, {**load.headers, "Authorization": f"Bearer {key}"})
                row = await run_point(f"tiffin image, API keys {mode}", load, 64, seconds, server.proc.pid)
                best[mode] = max(best[mode], row["rps"])
    return {
        "route": "image",
        "what": "req/s at c=64 with API keys on / off (best of each)",
        "value": round(best["on"] / max(best["off"], 1e-9), 3),
        "goal": 0.98,
    }


async def drift_cost(png: bytes, seconds: float, rounds: int = 2) -> list[dict]:
    """The image and small-text routes at 64 clients with drift monitoring on (the default)
    and off (TIFFIN_DRIFT=off), in alternating servers: the ratio of their best points."""
    from tiffin.deploy.serve import Server

    routes = ("image", "text-small")
    best = {(route, mode): 0.0 for route in routes for mode in ("on", "off")}
    for _ in range(rounds):
        for mode in ("off", "on"):
            with Server(env={"TIFFIN_DRIFT": mode}, ready_timeout=240) as server:
                for route in routes:
                    row = await run_point(
                        f"tiffin {route}, drift {mode}", loads(server.url, png)[route], 64, seconds, server.proc.pid
                    )
                    best[(route, mode)] = max(best[(route, mode)], row["rps"])
    return [
        {
            "route": route,
            "what": "req/s at c=64 with drift monitoring on / off (best of each) (goal >= 0.97)",
            "value": round(best[(route, "on")] / max(best[(route, "off")], 1e-9), 3),
            "goal": 0.97,
        }
        for route in routes
    ]
