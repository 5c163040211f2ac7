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
from tiffin.versions import followed
from tiffin.versions.book import AliasError, Book

log = logging.getLogger("tiffin")


@dataclass
class Following:
    """What one worker serves for one model, as the admin API reports it."""

    model: str
    alias: str
    serving: str
    error: str | None = None
    swaps: int = 0


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
            if held is None or f"{model}:{held.version}" == backend.tag:
                continue
            await self._swap(backend, f"{model}:{held.version}")

    async def _swap(self, backend: InProcess, tag: str) -> None:
        state = self.state[backend.family.name]
        before = backend.tag
        try:
            stored = await asyncio.to_thread(bentoml.models.get, tag)
            predictor = await asyncio.to_thread(_build, stored, backend)
        except Exception as exc:  # any failure to load keeps the old version serving
            state.error = f"could not load {tag}: {type(exc).__name__}: {exc}; still serving {before}"
            log.error("%s", state.error)
            return
        backend.swap(predictor, tag)
        state.serving, state.error, state.swaps = tag, None, state.swaps + 1
        log.info("%s@%s: now serving %s (was %s)", state.model, state.alias, tag, before)


def _build(stored, backend: InProcess):
    """The new version's predictor, built beside the serving one; with every batcher of the
    process paused while it builds when building it touches torch's process-wide state."""
    with batcher.paused() if type(backend.predictor).builds_alone else contextlib.nullcontext():
        return load_predictor(stored, backend.device)


FOLLOWING: dict[str, Following] = {}  # this worker's, by model name (read by tiffin/api/admin.py)


class FollowsAliases:
    """Mixin for services with `self.endpoints` (tiffin.api.endpoints.Endpoints): the worker
    follows the aliases its in-process models were loaded by."""

    _follow_task: asyncio.Task | None = None

    @bentoml.on_startup
    async def follow_aliases(self) -> None:
        poll = settings().alias_poll_s
        follower = Follower(self.endpoints.backends)
        FOLLOWING.update(follower.state)
        if poll > 0 and follower.state:
            self._follow_task = asyncio.create_task(follower.run(poll))

    @bentoml.on_shutdown
    async def stop_following(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow_task
