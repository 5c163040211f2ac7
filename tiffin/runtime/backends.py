"""How a front end (typed routes, OIP REST and gRPC, the hot path) reaches one model: one
interface, two ways.

- `InProcess`: the model loaded in this process behind one continuous `Batcher`; every front
  end of the process queues on it, so their requests share batches, and no request crosses a
  process boundary (the all-in-one service and each runner bento on its own).
- `Remote`: a runner service deployed apart, reached through `bentoml.depends` (the gateway).

Items, per family kind: an image is uint8 pixels of the model's input shape, a text a str,
a tabular row a dict already checked against its schema. Answers, per item: a classifier's
{"probabilities": {class: p}, "model": tag, "batch_size": n}, a regressor's {<output>: value,
"model": tag, "batch_size": n} (its signature's one output, e.g. "bikers").
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tiffin import families, store
from tiffin.config import settings
from tiffin.families import Family
from tiffin.runtime.batcher import Batcher, Overloaded
from tiffin.runtime.metrics import ModelMetrics

log = logging.getLogger("tiffin")


def _classes(predictor: families.Predictor) -> list[str]:
    try:
        return list(predictor.classes)
    except (NotImplementedError, AttributeError):  # a regressor
        return []


class Backend:
    family: Family
    tag: str
    classes: list[str]  # [] for a regressor
    max_batch: int  # the most items one call should carry

    @property
    def version(self) -> str:
        return self.tag.partition(":")[2]

    async def predict(self, items: Sequence[Any]) -> list[dict]:
        """One answer per item; raises `Overloaded` when the model cannot take them in time."""
        raise NotImplementedError

    async def ready(self) -> bool:
        raise NotImplementedError

    def refused(self, outcome: str) -> None:
        """Count a request refused before it reached the model (busy, bad_request, error)."""


class InProcess(Backend):
    def __init__(
        self, family: Family, predictor: families.Predictor, tag: str, *, threads: int = 1, max_batch: int | None = None
    ):
        """`predictor` answers whole batches; `threads` model threads take batches from the one queue."""
        self.family, self.predictor, self.tag = family, predictor, tag
        self.device = getattr(predictor, "device", None)
        self.classes = _classes(predictor)
        self.output = family.signature.outputs[0].name if family.signature is not None else "value"
        self.max_batch = max_batch or family.max_batch
        s = settings()
        self.counted = ModelMetrics.get().for_model(family.name, self.version)
        self.batcher = Batcher(
            self._run,
            max_batch=self.max_batch,
            max_wait_ms=s.hot_max_wait_ms,
            max_queue=s.hot_max_queue,
            deadline_s=s.hot_deadline_s,
            name=family.name,
            on_batch=self.counted.on_batch,
            threads=threads,
            collate=np.stack if family.kind == "image" else list,
        )

    @classmethod
    def load(cls, family: Family, stored: Any, device=None, **options) -> InProcess:
        """From the model store: `stored` is a resolved `bentoml.models.BentoModel` (or anything
        with `.tag` and `.path`); `options` as for the constructor."""
        start = time.perf_counter()
        device = device or store.pick_device()
        config = json.loads((Path(stored.path) / store.CONFIG).read_text())
        predictor = families.build(Path(stored.path), config, device)
        log.info("loaded %s on %s in %.2f s", stored.tag, device, time.perf_counter() - start)
        return cls(family, predictor, str(stored.tag), **options)

    def _run(self, batch: Any) -> list[dict]:
        """On a model thread: one forward pass, and each item's answer made there, off the event loop."""
        out = self.predictor(batch)
        n, tag = len(out), self.tag
        if self.classes and len(self.classes) > 10:  # a large label set (the 1000-class benchmark): its top 5
            names = self.classes
            best = np.argsort(out, axis=1)[:, ::-1][:, :5].tolist()
            return [
                {"probabilities": {names[i]: float(row[i]) for i in top}, "model": tag, "batch_size": n}
                for row, top in zip(out, best)
            ]
        if self.classes:
            names = self.classes
            return [{"probabilities": dict(zip(names, row)), "model": tag, "batch_size": n} for row in out.tolist()]
        return [{self.output: value, "model": tag, "batch_size": n} for value in out.tolist()]

    async def predict(self, items: Sequence[Any]) -> list[dict]:
        if len(items) == 1:
            answer, _ = await self.batcher.submit(items[0])
            return [answer]
        outcomes = await asyncio.gather(*(self.batcher.submit(i) for i in items), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [answer for answer, _ in outcomes]

    async def ready(self) -> bool:
        return True

    def refused(self, outcome: str) -> None:
        self.counted.refused(outcome)

    def close(self) -> None:
        self.batcher.close()


class Remote(Backend):
    """A runner service this service depends on (`bentoml.depends`), called with whole
    chunks: its own batcher combines them with other callers'."""

    def __init__(self, family: Family, handle: Any, max_batch: int):
        self.family, self.handle, self.max_batch = family, handle, max_batch
        self.tag = family.tag  # until the first answer names the exact version
        self.classes = []
        self._method = family.signature.method if family.signature is not None else "classify"

    async def predict(self, items: Sequence[Any]) -> list[dict]:
        from tiffin.runtime.remote import RunnerBusy, ask

        call = getattr(self.handle.to_async, self._method)
        step = self.max_batch
        chunks: list[Any] = [list(items[i : i + step]) for i in range(0, len(items), step)]
        if self.family.kind == "image":
            chunks = [np.stack(c) for c in chunks]
        try:
            answers = [a for part in await asyncio.gather(*(ask(call, c) for c in chunks)) for a in part]
        except RunnerBusy as exc:
            raise Overloaded(str(exc), exc.retry_after) from None
        if answers:
            self.tag = answers[0]["model"]
            if "probabilities" in answers[0]:
                self.classes = list(answers[0]["probabilities"])
        return answers

    @property
    def version(self) -> str:
        if self.tag.endswith(":latest"):  # what the store here (if any) resolves it to
            try:
                import bentoml

                self.tag = str(bentoml.models.get(self.tag).tag)
            except Exception:  # no store here: the first answer will name it
                return "latest"
        return self.tag.partition(":")[2]

    async def ready(self) -> bool:
        is_ready = getattr(self.handle, "is_ready", None)
        return True if is_ready is None else bool(await is_ready(5))
