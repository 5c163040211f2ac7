"""Closed-loop load: `concurrency` clients each send a request, wait for its answer, and
send the next, for a fixed time. Bounded in time and count; loopback only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

Send = Callable[[], Awaitable[bool]]  # one request; True when it succeeded


@dataclass
class Result:
    label: str
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")

    def row(self) -> dict:
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "requests": len(self.latencies) + self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.pct(50), 2),
            "p99_ms": round(self.pct(99), 2),
            "errors": self.errors,
        }


async def closed_loop(
    label: str, send: Send, concurrency: int, seconds: float, warmup: float = 0.5, max_requests: int = 200_000
) -> Result:
    result = Result(label, concurrency, seconds)
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    count = 0

    async def client() -> None:
        nonlocal count
        while count < max_requests:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            count += 1
            try:
                ok = await send()
            except Exception:
                ok = False
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                if ok:
                    result.latencies.append(t1 - t0)
                else:
                    result.errors += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return result
