"""`make bench`'s shadow section: what a 100 % shadow costs the primary's answers. One
all-in-one server on a store of its own (the bench store's models, hard-linked, plus a second
fashion-cnn version trained quick with another seed); the typed image route at 16 clients,
rounds alternating no shadow and a 100 % shadow of the other version, moved through the
alias book while the server runs (its workers follow it within a second). The goal compares
the median p99 of each mode."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.points import multipart, run_point, samples, total
from bench.wrk import HttpLoad
from tiffin import store
from tiffin.families import fashion

ROOT = Path(__file__).resolve().parents[1]


def _compared(url: str) -> float:
    """Answers the shadow has compared, summed over every label set: rises once the workers shadow."""
    return total(samples(url), "tiffin_shadow_compared_total")


def _compared_and_answered(url: str) -> tuple[float, float]:
    read = samples(url)
    return total(read, "tiffin_shadow_compared_total"), total(read, "tiffin_model_requests_total")


def _move(home: Path, *args: str) -> None:
    env = {**os.environ, "BENTOML_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "tiffin.client.cli", "models", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


async def shadow_cost(png: bytes, seconds: float, rounds: int = 2) -> list[dict]:
    from tiffin.deploy.serve import Server

    body, headers = multipart("image", "x.png", "image/png", png)
    with tempfile.TemporaryDirectory(prefix="tiffin-bench-shadow-") as tmp:
        home = store.linked_home(Path(os.environ["BENTOML_HOME"]), Path(tmp))
        env = {**os.environ, "BENTOML_HOME": str(home)}
        primary = store.open_model(fashion.FAMILY.tag).tag.partition(":")[2]
        subprocess.run([sys.executable, "-m", "train.image", "--quick", "--seed", "1"], cwd=ROOT, env=env, check=True)
        _move(home, "promote", "fashion-cnn", primary, "--force", "--why", "bench: the primary")
        other = store_versions(home, primary)
        p99 = {"off": [], "on": []}
        answered = compared = 0.0
        # followed through its alias, whatever pin the caller's environment holds (a fixed
        # version is not followed, so no shadow would start)
        follow = {"BENTOML_HOME": str(home), fashion.FAMILY.env: f"{fashion.FAMILY.name}@production"}
        with Server(env=follow, ready_timeout=240) as server:
            load = HttpLoad(server.url + "/classify_image", body, headers)
            for i in range(rounds):
                for mode in ("off", "on"):
                    if mode == "on":
                        _start_shadow(server.url, home, other, body, headers)
                        before = _compared_and_answered(server.url)
                    row = await run_point(f"image, shadow {mode} round {i + 1}", load, 16, seconds, server.proc.pid)
                    p99[mode].append(row["p99_ms"])
                    if mode == "on":
                        time.sleep(0.5)  # the shadow's queue drains
                        after = _compared_and_answered(server.url)
                        compared, answered = compared + after[0] - before[0], answered + after[1] - before[1]
                        _move(home, "shadow", "fashion-cnn", "--off", "--why", "bench")
                        time.sleep(2)  # every worker has read the book again
    off, on = statistics.median(p99["off"]), statistics.median(p99["on"])
    return [
        {
            "route": "image",
            "what": f"p99 at c=16 with a 100 % shadow / without ({on:.1f} / {off:.1f} ms; {compared / max(answered, 1):.0%}"
            " of answers compared) (goal <= 1.1)",
            "value": round(on / max(off, 1e-9), 2),
            "goal": 1.1,
            "lower_is_better": True,
        }
    ]


def store_versions(home: Path, primary: str) -> str:
    """The fashion-cnn version in `home` that is not `primary`: the one trained here."""
    versions = [p.name for p in (home / "models" / "fashion-cnn").iterdir() if p.is_dir() and p.name != primary]
    return max(versions, key=lambda v: (home / "models" / "fashion-cnn" / v).stat().st_mtime)


def _start_shadow(url: str, home: Path, version: str, body: bytes, headers: dict) -> None:
    before = _compared(url)
    _move(home, "shadow", "fashion-cnn", version, "--percent", "100", "--why", "bench")
    _wait(lambda: _compared(url) > before or _poke(url, body, headers))
    time.sleep(1.5)  # every worker has read the book


def _poke(url: str, body: bytes, headers: dict) -> bool:
    httpx.post(url + "/classify_image", content=body, headers=headers, timeout=10)
    return False


def _wait(done, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not start shadowing within 30 s")
        time.sleep(0.2)
