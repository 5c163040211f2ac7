"""What every runner service shares: load its model from the store once per worker into an
in-process backend (its batcher), warm it up, and report ready only then."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tiffin import families
from tiffin.runtime import logs, malloc
from tiffin.runtime.backends import InProcess
from tiffin.runtime.batcher import Overloaded
from tiffin.runtime.gc_pauses import FreezesStartupObjects
from tiffin.runtime.model_check import ChecksModelsFirst
from tiffin.runtime.respawn import RespawnsWorkers
from tiffin.versions.follow import FollowsAliases


class ModelRunner(ChecksModelsFirst, RespawnsWorkers, FollowsAliases, FreezesStartupObjects):
    """Mixin for `@bentoml.service` classes that set `family` (the tiffin.families entry they
    serve) and `model_ref` (its BentoModel, by `family.tag`); each worker follows the model's
    alias (tiffin/versions/follow.py)."""

    family: families.Family
    model_ref: object  # bentoml.models.BentoModel; resolves to the stored model on instances

    def __init__(self, threads: int = 1, max_batch: int | None = None) -> None:
        logs.configure()
        malloc.keep_batch_buffers()  # before the model allocates anything
        self.backend = InProcess.load(self.family, self.model_ref, threads=threads, max_batch=max_batch)
        self.device = self.backend.device
        self._ready = True

    async def run(self, items: Sequence[Any]) -> list[dict]:
        """The answers for a call from another service (the gateway): queued on the same
        batcher as this service's own front door, so they share batches."""
        from bentoml.exceptions import ServiceUnavailable

        try:
            return await self.backend.predict(items)
        except Overloaded as exc:
            raise ServiceUnavailable(str(exc)) from None

    def __is_ready__(self) -> bool:
        return getattr(self, "_ready", False)
