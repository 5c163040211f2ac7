"""An in-process batcher for the hot path: requests from the event loop, model threads
that each run whatever has queued as one batch.

Continuous batching: while the model runs a batch, new requests queue, and the next
batch takes everything queued (up to `max_batch`) the moment the model is free, so
batches grow with load and an idle server answers a lone request at once. `max_wait_ms`
(default 0) makes the thread wait that long for a batch to fill, trading latency for
batch size. The queue is bounded by item count and by deadline: past either, a request is
refused with `Overloaded` (a 503 with Retry-After) instead of waiting without end.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


class Overloaded(Exception):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Entry:
    item: np.ndarray
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued_at: float


def _settle(outcomes: list[tuple[asyncio.Future, object, BaseException | None]]) -> None:
    for future, value, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _deliver(entries: list[_Entry], values: list, errors: list) -> None:
    """Hand results back to the event loops: one wake-up per loop per batch, not per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for e, value, error in zip(entries, values, errors):
        by_loop.setdefault(e.loop, []).append((e.future, value, error))
    for loop, outcomes in by_loop.items():
        loop.call_soon_threadsafe(_settle, outcomes)


class Batcher:
    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 64, max_wait_ms: float = 0.0,
                 max_queue: int = 1024, deadline_s: float = 10.0, name: str = "batcher",
                 on_batch: Callable[[int, float, float], None] | None = None, threads: int = 1):
        """`on_batch(size, compute_seconds, oldest_wait_seconds)` runs on the model thread
        after each batch that succeeded: metrics are counted once per batch, off the event loop.
        `threads` model threads take batches from the one queue side by side."""
        self.fn, self.max_batch, self.max_wait = fn, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch
        self.max_queue, self.deadline = max_queue, deadline_s
        self._queue: collections.deque[_Entry] = collections.deque()
        self._cv = threading.Condition()
        self._batch_seconds = 0.01  # running estimate, for Retry-After
        self.batches = self.items = 0
        self._stopped = False
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    async def submit(self, item: np.ndarray) -> tuple[np.ndarray, int]:
        """Queue one item; returns (its output row, the size of the batch it ran in)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cv:
            if len(self._queue) >= self.max_queue:
                raise Overloaded(f"{len(self._queue)} requests are queued (the bound); try again shortly",
                                 retry_after=self._retry_after())
            self._queue.append(_Entry(item, future, loop, time.monotonic()))
            self._cv.notify()
        return await future

    def _retry_after(self) -> float:
        return max(1.0, round(len(self._queue) / self.max_batch * self._batch_seconds, 1))

    def _take(self) -> list[_Entry]:
        with self._cv:
            while not self._queue and not self._stopped:
                self._cv.wait()
            until = time.monotonic() + self.max_wait
            while len(self._queue) < self.max_batch and not self._stopped and time.monotonic() < until:
                self._cv.wait(until - time.monotonic())
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _run(self) -> None:
        while not self._stopped:
            batch = self._take()
            if not batch:
                continue
            now = time.monotonic()
            live = [e for e in batch if now - e.queued_at <= self.deadline]
            late = [e for e in batch if now - e.queued_at > self.deadline]
            if late:
                _deliver(late, [None] * len(late), [Overloaded(
                    f"waited {now - e.queued_at:.1f} s, past the {self.deadline:.0f} s deadline", self._retry_after())
                    for e in late])
            if live:
                start = time.perf_counter()
                try:
                    out = self.fn(np.stack([e.item for e in live]))
                except Exception as exc:  # one bad batch fails its requests, never the thread
                    _deliver(live, [None] * len(live), [exc] * len(live))
                    continue
                _deliver(live, [(row, len(live)) for row in out], [None] * len(live))
                seconds = time.perf_counter() - start
                with self._cv:
                    self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
                    self.batches += 1
                    self.items += len(live)
                if self.on_batch is not None:
                    self.on_batch(len(live), seconds, now - live[0].queued_at)

    def close(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(5)
