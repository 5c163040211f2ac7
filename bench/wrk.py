"""Closed-loop HTTP load from wrk (C, one epoll thread): `concurrency` connections each send
the next request as soon as the last is answered. On a 2-core machine the client shares the
cores with the server, so its own cost matters: wrk spends a fraction of the CPU per request
that a Python client does. Same row shape as bench/loadgen.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_post.lua")


def available() -> bool:
    return shutil.which("wrk") is not None


@dataclass
class HttpLoad:
    """One fixed POST, sent over and over: what wrk can replay and aiohttp can too. With
    `bodies`, each request sends the next of them instead (cycling), e.g. distinct inputs
    for the response cache's bench."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[bytes] | None = None


def _run(load: HttpLoad, body_file: str, concurrency: int, seconds: float) -> tuple[dict, float]:
    env = {
        **os.environ,
        "TIFFIN_WRK_BODY": body_file,
        "TIFFIN_WRK_BODIES": body_file + ".seq" if load.bodies else "",
        "TIFFIN_WRK_HEADERS": "\n".join(f"{k}: {v}" for k, v in load.headers.items()),
    }
    with tempfile.TemporaryFile() as out:
        # One thread on our 2 cores (the client's CPU is the server's loss); a quarter of the
        # cores on a larger machine (a lent GPU box), where one thread could not keep up.
        threads = max(1, min(concurrency, (os.cpu_count() or 1) // 4))
        proc = subprocess.Popen(
            [
                "wrk",
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "120s",
                "-s",
                str(SCRIPT),
                load.url,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        # wait4, not wait: it hands back the child's own CPU time, the load generator's cost.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-2000:]}")
    summary = json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))
    return summary, usage.ru_utime + usage.ru_stime


def closed_loop(label: str, load: HttpLoad, concurrency: int, seconds: float, warmup: float = 1) -> tuple[dict, float]:
    """(row, load generator CPU seconds) for `seconds` of load after `warmup` seconds unmeasured.
    wrk counts time in whole seconds: both are rounded, to at least 1."""
    with tempfile.NamedTemporaryFile(suffix=".body") as body:
        body.write(load.body)
        body.flush()
        if load.bodies:  # "<length>\n<bytes>" each, read by wrk_post.lua
            Path(body.name + ".seq").write_bytes(b"".join(b"%d\n%s" % (len(b), b) for b in load.bodies))
        if warmup > 0:
            _run(load, body.name, concurrency, warmup)
        try:
            s, cpu = _run(load, body.name, concurrency, seconds)
        finally:
            Path(body.name + ".seq").unlink(missing_ok=True)
    errors = s["non_2xx"] + s["socket_errors"]
    ok = max(s["responses"] - s["non_2xx"], 0)
    duration = s["duration_us"] / 1e6
    return {
        "label": label,
        "concurrency": concurrency,
        "requests": s["responses"] + s["socket_errors"],
        "rps": round(ok / duration, 1),
        "p50_ms": round(s["p50_us"] / 1000, 2),
        "p99_ms": round(s["p99_us"] / 1000, 2),
        "errors": errors,
        "client": "wrk",
    }, cpu
