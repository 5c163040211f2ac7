"""An in-process batcher for the hot path: requests from the event loop, one model
thread that runs whatever has queued as one batch.

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


def _settle(future: asyncio.Future, value=None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class Batcher:
    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 64, max_wait_ms: float = 0.0,
                 max_queue: int = 1024, deadline_s: float = 10.0, name: str = "batcher",
                 on_batch: Callable[[int, float, float], None] | None = None):
        """`on_batch(size, compute_seconds, oldest_wait_seconds)` runs on the model thread
        after each batch: metrics are counted once per batch, off the event loop."""
        self.fn, self.max_batch, self.max_wait = fn, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch
        self.max_queue, self.deadline = max_queue, deadline_s
        self._queue: collections.deque[_Entry] = collections.deque()
        self._cv = threading.Condition()
        self._batch_seconds = 0.01  # running estimate, for Retry-After
        self.batches = self.items = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

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

    @property
    def depth(self) -> int:
        return len(self._queue)

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
            live = []
            for e in batch:
                if now - e.queued_at > self.deadline:
                    e.loop.call_soon_threadsafe(_settle, e.future, None, Overloaded(
                        f"waited {now - e.queued_at:.1f} s, past the {self.deadline:.0f} s deadline", self._retry_after()))
                else:
                    live.append(e)
            if live:
                start = time.perf_counter()
                try:
                    out = self.fn(np.stack([e.item for e in live]))
                except Exception as exc:  # one bad batch fails its requests, never the thread
                    for e in live:
                        e.loop.call_soon_threadsafe(_settle, e.future, None, exc)
                else:
                    for i, e in enumerate(live):
                        e.loop.call_soon_threadsafe(_settle, e.future, (out[i], len(live)))
                seconds = time.perf_counter() - start
                self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
                self.batches += 1
                self.items += len(live)
                if self.on_batch is not None:
                    self.on_batch(len(live), seconds, now - live[0].queued_at)

    def close(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._thread.join(5)
