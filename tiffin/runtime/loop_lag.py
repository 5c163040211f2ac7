"""How long the event loop was held: a timer that should fire every 10 ms, and how late it
fired (`tiffin_event_loop_lag_seconds`, a histogram per worker). A request that holds the
loop (parsing a large body, decoding an image on it) shows here, whatever route it took."""

from __future__ import annotations

import asyncio
import time

INTERVAL_S = 0.01
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_started: set[int] = set()


def start() -> None:
    """Starts the timer on the running loop, once per loop."""
    loop = asyncio.get_running_loop()
    if id(loop) in _started:
        return
    _started.add(id(loop))
    import prometheus_client as prom

    lag = prom.Histogram("tiffin_event_loop_lag_seconds", "how late a 10 ms timer on the event loop fired", buckets=BUCKETS)
    loop.create_task(_watch(lag.observe), name="tiffin-loop-lag")


async def _watch(observe) -> None:
    while True:
        start = time.perf_counter()
        await asyncio.sleep(INTERVAL_S)
        observe(max(0.0, time.perf_counter() - start - INTERVAL_S))
