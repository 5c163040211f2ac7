"""The serving side of aliases: each worker polls the alias book (TIFFIN_ALIAS_POLL_S, 1 s)
and, when an alias it follows names another version, loads and warms that version beside the
one serving, then swaps it in between two batches (`InProcess.swap`). No request fails across
the swap; an image model is built with the process's batchers paused (its build traces with
torch.fx, which would break forward passes running beside it), so requests wait that long; a version that cannot be loaded leaves the old one serving,
with the error in the log and in the admin API's `show`.

Every worker (and every replica) learns of a move the same way, by reading the file: on one
host the book beside the store; on Kubernetes a ConfigMap mounted at TIFFIN_ALIASES_FILE (the
kubelet replaces the mounted file atomically, as the book's writers do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import bentoml

from tiffin.config import settings
from tiffin.runtime import batcher
from tiffin.runtime.backends import InProcess, load_predictor
from tiffin.versions import canary, followed, traffic
from tiffin.versions.book import AliasError, Book
from tiffin.versions.shadow import SHADOW_QUEUE, Shadow, disagreements_log

log = logging.getLogger("tiffin")


@dataclass
class Following:
    """What one worker serves for one model, as the admin API reports it."""

    model: str
    alias: str
    serving: str
    error: str | None = None
    swaps: int = 0
    traffic: dict | None = None  # the split served, as the book holds it
    shadow: dict | None = None  # the shadow, as the book holds it


@dataclass
class Follower:
    backends: list[InProcess]
    book: Book = field(default_factory=Book)
    state: dict[str, Following] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._targets = []
        for backend in self.backends:
            follows = followed(backend.family) if isinstance(backend, InProcess) else None
            if follows is not None:
                self._targets.append((backend, *follows))
                self.state[backend.family.name] = Following(*follows, serving=backend.tag)

    async def run(self, poll_s: float) -> None:
        seen = self.book.stamp()
        await self.sync()  # a move between the import that loaded the models and now
        while True:
            await asyncio.sleep(poll_s)
            stamp = self.book.stamp()
            if stamp != seen:
                seen = stamp
                await self.sync()

    async def sync(self) -> None:
        """Serve what the book names now (one model at a time, so loads do not pile up)."""
        try:
            data = await asyncio.to_thread(self.book.read)
        except AliasError as exc:  # a broken book changes nothing that is serving
            log.error("alias book unreadable, serving on unchanged: %s", exc)
            return
        for backend, model, alias in self._targets:
            held = self.book.holder(model, alias, data)
            if held is not None and f"{model}:{held.version}" != backend.tag:
                await self._swap(backend, f"{model}:{held.version}")
            await self._split(backend, model, self.book.traffic(model, data))
            await self._shadow(backend, model, self.book.shadow(model, data))

    async def _load(self, backend: InProcess, tag: str):
        """`tag`'s predictor, or None (with the error kept) when it cannot be loaded."""
        state = self.state[backend.family.name]
        try:
            stored = await asyncio.to_thread(bentoml.models.get, tag)
            return await asyncio.to_thread(_build, stored, backend)
        except Exception as exc:  # any failure to load keeps what is serving as it is
            state.error = f"could not load {tag}: {type(exc).__name__}: {exc}; still serving {backend.tag}"
            log.error("%s", state.error)
            return None

    async def _swap(self, backend: InProcess, tag: str) -> None:
        state = self.state[backend.family.name]
        before = backend.tag
        predictor = await self._load(backend, tag)
        if predictor is None:
            return
        backend.swap(predictor, tag)
        state.serving, state.error, state.swaps = tag, None, state.swaps + 1
        log.info("%s@%s: now serving %s (was %s)", state.model, state.alias, tag, before)

    async def _split(self, backend: InProcess, model: str, wanted: dict | None) -> None:
        """Serve the book's split for `model`: a lane (its own batcher) per version, the
        alias's version served by the backend itself; lanes no longer named are retired."""
        state, old = self.state[backend.family.name], backend.split
        if wanted is None:
            backend.split, state.traffic = None, None
            _retire(old, backend, keep=())
            return
        sticky = wanted.get("sticky")
        current = dict(old.lanes) if old is not None else {}
        if _serves(old, wanted, backend):
            return
        lanes = {}
        for version in wanted["weights"]:
            tag = f"{model}:{version}"
            if tag == backend.tag:
                lanes[version] = backend
            elif version in current and current[version] is not backend:
                lanes[version] = current[version]
            else:
                predictor = await self._load(backend, tag)
                if predictor is None:
                    return
                lanes[version] = InProcess(backend.family, predictor, tag, threads=backend.threads, max_batch=backend.max_batch)
        backend.split = traffic.Split(lanes, dict(wanted["weights"]), sticky.encode() if sticky else None)
        state.traffic, state.error = dict(wanted), None
        _retire(old, backend, keep=lanes.values())
        log.info("%s: traffic %s", model, ", ".join(f"{v}={w}" for v, w in wanted["weights"].items()))

    async def _shadow(self, backend: InProcess, model: str, wanted: dict | None) -> None:
        """Offer the book's share of requests to its shadow version (loaded with a small queue
        and low-priority threads), or stop."""
        state, old = self.state[backend.family.name], backend.shadow
        if wanted is None:
            if old is not None:
                backend.shadow, state.shadow = None, None
                _close_later(old.lane, old.close)
            return
        if old is not None and old.version == wanted["version"]:
            old.percent, state.shadow = wanted["percent"], dict(wanted)
            return
        tag = f"{model}:{wanted['version']}"
        predictor = await self._load(backend, tag)
        if predictor is None:
            return
        lane = InProcess(backend.family, predictor, tag, threads=1, max_batch=backend.max_batch, max_queue=SHADOW_QUEUE, nice=19)
        output = None if backend.classes else backend.output
        backend.shadow = Shadow(model, lane, wanted["percent"], output, disagreements_log(model))
        state.shadow, state.error = dict(wanted), None
        if old is not None:
            _close_later(old.lane, old.close)
        log.info("%s: shadow %s for %g %% of requests", model, tag, wanted["percent"])


def _close_later(lane: InProcess, *more) -> None:
    """Close a lane once nothing can still be queued on it: the batch deadline, and a margin."""
    loop = asyncio.get_running_loop()

    def close() -> None:
        lane.close()
        for step in more:
            step()

    loop.call_later(settings().hot_deadline_s + 5, lambda: loop.run_in_executor(None, close))


def _serves(split: traffic.Split | None, wanted: dict, backend: InProcess) -> bool:
    """Whether `split` already serves the book's `wanted` split (the same weights and sticky
    header, and the backend's own lane still on the version it is listed under)."""
    sticky = wanted.get("sticky")
    return (
        split is not None
        and dict(split.weights) == wanted["weights"]
        and split.sticky == (sticky.encode() if sticky else None)
        and all(lane is not backend or v == backend.version for v, lane in split.lanes.items())
    )


def _retire(split: traffic.Split | None, backend: InProcess, keep) -> None:
    """Close the lanes of an old split that the new one does not use (never the backend
    itself), once no request can still be queued on them: the batch deadline, and a margin."""
    if split is None:
        return
    kept = {id(lane) for lane in keep} | {id(backend)}
    for lane in split.lanes.values():
        if id(lane) not in kept:
            _close_later(lane)


def _build(stored, backend: InProcess):
    """The new version's predictor, built beside the serving one; with every batcher of the
    process paused while it builds when building it touches torch's process-wide state."""
    with batcher.paused() if type(backend.predictor).builds_alone else contextlib.nullcontext():
        return load_predictor(stored, backend.device)


FOLLOWING: dict[str, Following] = {}  # this worker's, by model name (read by tiffin/api/admin.py)


class FollowsAliases:
    """Mixin for services with `self.endpoints` (tiffin.api.endpoints.Endpoints) or a `self.backend`:
    the worker follows the aliases its in-process models were loaded by."""

    _follow_task: asyncio.Task | None = None
    _judge_task: asyncio.Task | None = None  # tiffin/versions/canary.py

    @bentoml.on_startup
    async def follow_aliases(self) -> None:
        poll = settings().alias_poll_s
        endpoints = getattr(self, "endpoints", None)  # a runner without typed routes has its `backend` only
        follower = Follower(endpoints.backends if endpoints is not None else [b for b in [getattr(self, "backend", None)] if b])
        FOLLOWING.update(follower.state)
        if poll > 0 and follower.state:
            self._follow_task = asyncio.create_task(follower.run(poll))
            self._judge_task = asyncio.create_task(canary.Judge(follower.state).run())

    @bentoml.on_shutdown
    async def stop_following(self) -> None:
        for task in (self._follow_task, self._judge_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
