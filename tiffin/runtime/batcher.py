"""An in-process batcher for the hot path: requests from the event loop, model threads
that each run whatever has queued as one batch.

Continuous batching: while the model runs a batch, new requests queue, and the next
batch takes everything queued (up to `max_batch`) the moment the model is free, so
batches grow with load and an idle server answers a lone request at once. `max_wait_ms`
(default 0) makes the thread wait that long for a batch to fill, trading latency for
batch size. The queue is bounded by item count and by deadline: past either, a request is
refused with `Overloaded` (a 503 with Retry-After) instead of waiting without end; a request
the queue ahead would hold past the deadline is refused on arrival, before any work is spent.
A request whose client has gone is dropped before its batch runs (`CLIENT_GONE`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger("tiffin")
_LIVE: weakref.WeakSet[Batcher] = weakref.WeakSet()  # every batcher of this process, for `paused`

# How a request learns that its client has gone: set per request by the front end (the front
# door: ASGI's `receive` after the body), awaited only while the request waits in a queue
# longer than WATCH_AFTER_S, so a short wait costs nothing. A client that leaves while queued
# (a timeout, a closed connection) takes its item out of the queue: left in, it would be run
# and its answer thrown away, at the cost of the requests queued behind it.
CLIENT_GONE: ContextVar[Callable[[], Awaitable[bool]] | None] = ContextVar("tiffin_client_gone", default=None)
WATCH_AFTER_S = 0.05


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Every batcher of this process finishes the batch it is running and starts no other until
    the block ends (requests queue meanwhile). For steps that change torch's process-wide state
    while they run, which a forward pass on another thread would trip over: torch.fx tracing
    (the image predictors fold their BatchNorms with it) patches `nn.Module.__call__`, and CUDA
    graph capture refuses other threads' work on the device."""
    batchers = list(_LIVE)
    try:
        for batcher in batchers:
            batcher._hold(True)
        yield
    finally:
        for batcher in batchers:
            batcher._hold(False)


class Overloaded(Exception):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class ClientGone(Exception):
    """The request's client went away while it was queued: nobody is left to answer."""


@dataclass(slots=True)
class _Entry:
    item: Any
    future: asyncio.Future | Callable[[Any], None]  # a callable (and no loop): `Batcher.offer`
    loop: asyncio.AbstractEventLoop | None
    queued_at: float
    taken: bool = False  # in a batch: it runs, whoever is left to read its answer


def _settle(futures: list[asyncio.Future], values: list, size: int) -> None:
    for future, value in zip(futures, values):
        if not future.done():
            future.set_result((value, size))


def _fail(futures: list[asyncio.Future], errors: list[BaseException]) -> None:
    for future, error in zip(futures, errors):
        if not future.done():
            future.set_exception(error)


def _by_loop(entries: list[_Entry], outcomes: list) -> dict[asyncio.AbstractEventLoop, tuple[list, list]]:
    """One wake-up per event loop per batch, not per request (a batch nearly always has one loop)."""
    loop = entries[0].loop
    if all(e.loop is loop for e in entries):
        return {loop: ([e.future for e in entries], outcomes)}
    grouped: dict[asyncio.AbstractEventLoop, tuple[list, list]] = {}
    for e, outcome in zip(entries, outcomes):
        futures, values = grouped.setdefault(e.loop, ([], []))
        futures.append(e.future)
        values.append(outcome)
    return grouped


def _deliver(entries: list[_Entry], outcomes: list, settle: Callable, *args) -> None:
    """`settle(futures, outcomes, *args)` on each entry's event loop (`_settle` or `_fail`);
    an offered entry's callable gets its outcome here, on the model thread."""
    if any(e.loop is None for e in entries):
        waited = []
        for e, outcome in zip(entries, outcomes):
            if e.loop is not None:
                waited.append((e, outcome))
                continue
            try:
                e.future(outcome)
            except Exception:  # an offer's callback must not cost the thread
                log.exception("an offered item's callback failed")
        if not waited:
            return
        entries, outcomes = [e for e, _ in waited], [o for _, o in waited]
    for loop, (futures, outs) in _by_loop(entries, outcomes).items():
        loop.call_soon_threadsafe(settle, futures, outs, *args)


class Batcher:
    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
        max_queue: int = 1024,
        deadline_s: float = 10.0,
        name: str = "batcher",
        on_batch: Callable[[int, float, float], None] | None = None,
        threads: int = 1,
        collate: Callable[[Sequence[Any]], Any] = np.stack,
        nice: int = 0,
        on_start: Callable[[], None] | None = None,
        on_drop: Callable[[int], None] | None = None,
    ):
        """`on_batch(size, compute_seconds, oldest_wait_seconds)` runs on the model thread
        after each batch that succeeded: metrics are counted once per batch, off the event loop.
        `threads` model threads take batches from the one queue side by side. `collate` makes
        the queued items one batch for `fn` (default: stacks arrays). `nice` > 0 lowers the
        model threads' OS priority (a shadow's: the kernel runs them when the others wait).
        `on_start()` runs first on each model thread (per-thread settings, e.g. torch's threads).
        `on_drop(n)` runs on the model thread for the n queued requests it dropped unrun: their
        clients left (`CLIENT_GONE`) or their tasks were cancelled (a cancelled RPC)."""
        self.fn, self.collate, self.max_batch, self.max_wait = fn, collate, max_batch, max_wait_ms / 1000
        self.on_batch, self.nice, self.on_start, self.on_drop = on_batch, nice, on_start, on_drop
        self.max_queue, self.deadline = max_queue, deadline_s
        self._queue: collections.deque[_Entry] = collections.deque()
        self._cv = threading.Condition()
        self._batch_seconds = 0.01  # running estimate, for Retry-After
        self.batches = self.items = 0
        self._stopped = False
        self._held, self._running = False, 0  # `paused`: no new batch while held; batches running
        _LIVE.add(self)
        self._threads = [threading.Thread(target=self._thread, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    async def submit(self, item: Any) -> tuple[Any, int]:
        """Queue one item; returns (its output row, the size of the batch it ran in)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cv:
            if len(self._queue) >= self.max_queue:
                raise Overloaded(
                    f"{len(self._queue)} requests are queued (the bound); try again shortly", retry_after=self._retry_after()
                )
            # Refused before any work when the queue ahead would take it past its deadline:
            # run late, its answer would be thrown away, and the work it took from the
            # requests that can still be answered in time would be lost with it.
            ahead = self._expected_wait()
            if ahead > self.deadline:
                raise Overloaded(
                    f"the queue ahead would take {ahead:.1f} s, past the {self.deadline:g} s deadline; try again shortly",
                    retry_after=self._retry_after(),
                )
            entry = _Entry(item, future, loop, time.monotonic())
            self._queue.append(entry)
            self._cv.notify()
            # its wait, at least: the batches queued ahead, or the one running on every thread
            busy = self._running >= len(self._threads)
            long_wait = max(ahead, self._batch_seconds if busy else 0.0) > WATCH_AFTER_S
        gone = CLIENT_GONE.get() if long_wait else None
        if gone is None:
            return await future
        watcher = loop.create_task(gone())
        watcher.add_done_callback(functools.partial(self._drop_if_gone, entry))
        try:
            return await future
        finally:
            watcher.cancel()

    def offer(self, item: Any, done: Callable[[Any], None]) -> bool:
        """Queue one item without waiting for it: `done(its output row, or the exception)` runs
        on the model thread. False, and nothing queued, when the queue is full. For work on the
        side (a shadow), which should cost the event loop no task and no wake-up."""
        with self._cv:
            if len(self._queue) >= self.max_queue:
                return False
            self._queue.append(_Entry(item, done, None, time.monotonic()))
            self._cv.notify()
        return True

    def _drop_if_gone(self, entry: _Entry, watcher: asyncio.Task) -> None:
        """On the event loop, when a queued request's watch ends: its client left, so it fails
        now, unless a model thread has taken it into a batch (the lock orders the two)."""
        if watcher.cancelled() or watcher.exception() is not None or not watcher.result():
            return
        with self._cv:
            if not entry.taken and not entry.future.done():
                entry.future.set_exception(ClientGone("the client went away while the request was queued"))

    def _expected_wait(self) -> float:
        """Seconds until an item queued now starts, at most: the batches ahead of it (the full ones
        queued and one running), shared by the threads; none for the first in an empty queue."""
        if not self._queue:
            return 0.0
        return (len(self._queue) // self.max_batch + 1) * self._batch_seconds / len(self._threads)

    def _retry_after(self) -> float:
        return max(1.0, round(len(self._queue) / self.max_batch * self._batch_seconds, 1))

    def _hold(self, held: bool) -> None:
        with self._cv:
            self._held = held
            self._cv.notify_all()
            while held and self._running and not self._stopped:
                self._cv.wait()

    def _take(self) -> tuple[list[_Entry], int]:
        """The next batch, and how many queued requests were dropped unrun on the way."""
        with self._cv:
            while True:
                while (not self._queue or self._held) and not self._stopped:
                    self._cv.wait()
                until = time.monotonic() + self.max_wait
                while len(self._queue) < self.max_batch and not self._stopped and time.monotonic() < until:
                    self._cv.wait(until - time.monotonic())
                if not self._held or self._stopped:
                    break
            batch, dropped = [], 0
            while self._queue and len(batch) < self.max_batch:
                entry = self._queue.popleft()
                # done already: its client went away or its task was cancelled (an offer has no `done`)
                if entry.loop is not None and entry.future.done():
                    dropped += 1
                    continue
                entry.taken = True
                batch.append(entry)
            self._running += bool(batch)
            return batch, dropped

    def _thread(self) -> None:
        if self.nice:
            try:  # Linux: a thread's own id takes its own priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
                if self.nice >= 19 and hasattr(os, "SCHED_IDLE"):
                    # SCHED_IDLE: runs only on a core nothing else wants, and gives it up at once
                    # (a nice-19 thread keeps its slice, milliseconds, before it is preempted)
                    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            except OSError as exc:
                log.warning("could not lower the priority of %s: %s", threading.current_thread().name, exc)
        if self.on_start is not None:
            self.on_start()
        self._run()

    def _run(self) -> None:
        while not self._stopped:
            batch, dropped = self._take()
            if dropped and self.on_drop is not None:
                try:
                    self.on_drop(dropped)
                except Exception:  # a metrics failure must not cost the thread
                    log.exception("on_drop failed")
            if not batch:
                continue
            try:
                self._run_batch(batch)
            finally:
                with self._cv:
                    self._running -= 1
                    if self._held:
                        self._cv.notify_all()

    def _run_batch(self, batch: list[_Entry]) -> None:
        now = time.monotonic()
        live = [e for e in batch if now - e.queued_at <= self.deadline]
        late = [e for e in batch if now - e.queued_at > self.deadline]
        if late:
            _deliver(
                late,
                [
                    Overloaded(f"waited {now - e.queued_at:.1f} s, past the {self.deadline:g} s deadline", self._retry_after())
                    for e in late
                ],
                _fail,
            )
        if live:
            start = time.perf_counter()
            try:
                out = self.fn(self.collate([e.item for e in live]))
            except Exception as exc:  # one bad batch fails its requests, never the thread
                _deliver(live, [exc] * len(live), _fail)
                return
            seconds = time.perf_counter() - start
            with self._cv:
                # the first batch sets the pace; later ones move it
                self._batch_seconds = seconds if self.batches == 0 else 0.8 * self._batch_seconds + 0.2 * seconds
                self.batches += 1
                self.items += len(live)
            # Counted before the answers go: once they do, the event loop wakes and takes the
            # GIL back and forth with this thread, and all that is left to run here is `_take`.
            if self.on_batch is not None:
                try:
                    self.on_batch(len(live), seconds, now - live[0].queued_at)
                except Exception:  # a metrics failure must not cost the batch its answers
                    log.exception("on_batch failed")
            _deliver(live, out, _settle, len(live))

    def close(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(5)
