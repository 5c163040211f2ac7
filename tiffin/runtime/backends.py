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
import functools
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tiffin import families, store
from tiffin.config import settings
from tiffin.families import Family
from tiffin.runtime import cache, drift, layout
from tiffin.runtime.batcher import Batcher, Overloaded
from tiffin.runtime.metrics import ModelMetrics
from tiffin.versions import traffic

log = logging.getLogger("tiffin")


def classes_of(predictor: families.Predictor) -> list[str]:
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

    @property
    def versions(self) -> list[str]:
        """Every version a request may be answered by (more than one while traffic is split)."""
        return [self.version]

    @property
    def cascade_threshold(self) -> float | None:
        """The tier=auto threshold stored with a small model's version, when it has one."""
        return None

    async def predict(self, items: Sequence[Any]) -> list[dict]:
        """One answer per item; raises `Overloaded` when the model cannot take them in time."""
        raise NotImplementedError

    async def ready(self) -> bool:
        raise NotImplementedError

    def refused(self, outcome: str) -> None:
        """Count a request refused before it reached the model (busy, bad_request, error)."""


@functools.lru_cache(maxsize=64)  # a version's files never change; tags are exact after the first answer
def _stored_threshold(tag: str) -> float | None:
    if tag.endswith(":latest"):
        return None
    try:
        import bentoml

        config = json.loads((Path(bentoml.models.get(tag).path) / store.CONFIG).read_text())
    except Exception:  # not in this host's store: the catalog's threshold applies
        return None
    return (config.get("cascade") or {}).get("threshold")


def load_predictor(stored: Any, device: Any) -> families.Predictor:
    """A stored version's predictor, built and warmed up (`stored`: anything with `.tag` and `.path`)."""
    start = time.perf_counter()
    config = json.loads((Path(stored.path) / store.CONFIG).read_text())
    predictor = families.build(Path(stored.path), config, device)
    log.info("loaded %s on %s in %.2f s", stored.tag, device, time.perf_counter() - start)
    return predictor


class InProcess(Backend):
    def __init__(
        self,
        family: Family,
        predictor: families.Predictor,
        tag: str,
        *,
        threads: int = 1,
        max_batch: int | None = None,
        max_queue: int | None = None,
        nice: int = 0,
    ):
        """`predictor` answers whole batches; `threads` model threads take batches from the one
        queue; `max_queue` and `nice` as for the Batcher (a shadow's are smaller and lower)."""
        self.family = family
        self.device = getattr(predictor, "device", None)
        self.output = family.signature.outputs[0].name if family.signature is not None else "value"
        self.max_batch = max_batch or family.max_batch
        self.threads = threads
        self.split: traffic.Split | None = None  # set by tiffin/versions/follow.py
        self.shadow: Any = None  # a tiffin.versions.shadow.Shadow, set by follow.py
        self._local = threading.local()  # the series of the version each model thread's batch ran on
        self.swap(predictor, tag)
        s = settings()
        self.batcher = Batcher(
            self._run,
            max_batch=self.max_batch,
            max_wait_ms=s.hot_max_wait_ms,
            max_queue=max_queue or s.hot_max_queue,
            deadline_s=s.hot_deadline_s,
            name=family.name,
            on_batch=self._on_batch,
            threads=threads,
            collate=np.stack if family.kind == "image" else list,
            nice=nice,
            on_start=layout.torch_threads_here(),
            on_drop=self._on_drop,
        )

    @property
    def predictor(self) -> families.Predictor:
        return self._serving[0]

    @property
    def tag(self) -> str:
        return self._serving[1]

    def swap(self, predictor: families.Predictor, tag: str) -> None:
        """Serve another version (already loaded and warmed) from the next batch on. A batch
        that has started ends on the version it started with, and every answer names the
        version that made it; the old predictor is freed when its last batch lets go of it."""
        version = tag.partition(":")[2]
        counted = ModelMetrics.get().for_model(self.family.name, version)
        self.classes = classes_of(predictor)
        s = settings()
        # a cache per version: a swap starts empty, so no answer of the old version is served
        cached = cache.enabled(self.family.name)
        self.cache = cache.ResponseCache(self.family.name, version, int(s.cache_mb * 2**20), s.cache_ttl_s) if cached else None
        monitor = drift.monitor_for(self.family, version, predictor, self.classes)
        self._serving = (predictor, tag, counted, monitor)  # one assignment: a batch reads all or none

    @classmethod
    def load(cls, family: Family, stored: Any, device=None, **options) -> InProcess:
        """From the model store: `stored` is a resolved `bentoml.models.BentoModel` (or anything
        with `.tag` and `.path`); `options` as for the constructor."""
        return cls(family, load_predictor(stored, device or store.pick_device()), str(stored.tag), **options)

    def _run(self, batch: Any) -> list[dict]:
        """On a model thread: one forward pass, and each item's answer made there, off the event loop."""
        predictor, tag, self._local.counted, monitor = self._serving
        out = predictor(batch)
        n = len(out)
        if monitor is not None:
            monitor.offer(batch, out)
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

    def _on_batch(self, size: int, seconds: float, oldest_wait: float) -> None:
        self._local.counted.on_batch(size, seconds, oldest_wait)  # same thread as the batch's `_run`

    @property
    def versions(self) -> list[str]:
        return list(self.split.lanes) if self.split is not None else [self.version]

    @property
    def cascade_threshold(self) -> float | None:
        return (getattr(self.predictor, "config", None) or {}).get("cascade", {}).get("threshold")

    async def predict(self, items: Sequence[Any]) -> list[dict]:
        split = self.split
        if split is not None:
            answers = await split.choose(traffic.ROUTE.get(), self.family.name).answer(items)
        else:
            headers = traffic.ROUTE.get()
            if headers is not None and traffic.HEADER in headers:
                asked = traffic.asked_version(headers, self.family.name)
                if asked is not None and asked != self.version:
                    traffic.check_served(asked, [self.version])
            answers = await self.answer(items)
        if self.shadow is not None:
            self.shadow.offer(items, answers)  # on the side: the answers go now
        return answers

    async def answer(self, items: Sequence[Any]) -> list[dict]:
        """`predict` on this version, whatever the split says; from the cache where it has the answer."""
        store = self.cache
        if store is None:
            return await self._submit(items)
        keys = [store.key(item) for item in items]
        found = [store.get(k) for k in keys]
        missing = [i for i, answer in enumerate(found) if answer is None]
        cache.OUTCOME.set("miss" if missing else "hit")
        if missing:
            fresh = await self._submit([items[i] for i in missing])
            tag = f"{store.model}:{store.version}"
            for i, answer in zip(missing, fresh):
                found[i] = answer
                if answer["model"] == tag:  # not an answer of another version swapped in meanwhile
                    store.put(keys[i], answer)
        return found

    def _on_drop(self, n: int) -> None:
        self._serving[2].refused("gone", n)  # on the model thread, where the batcher dropped them

    async def _submit(self, items: Sequence[Any]) -> list[dict]:
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
        self._serving[2].refused(outcome)

    def close(self) -> None:
        self.batcher.close()


class Remote(Backend):
    """A runner service this service depends on (`bentoml.depends`), called with whole
    chunks: its own batcher combines them with other callers'."""

    def __init__(self, family: Family, handle: Any, max_batch: int):
        from tiffin.runtime.remote import RunnerHealth

        self.family, self.handle, self.max_batch = family, handle, max_batch
        self.health = RunnerHealth(family.name, handle)  # polled once the service starts
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
            parts = await self.health.call(lambda: asyncio.gather(*(ask(call, c) for c in chunks)))
            answers = [a for part in parts for a in part]
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

    @property
    def cascade_threshold(self) -> float | None:
        """The threshold stored with the version that answered last, read from this host's
        store (a bento packs its dependencies' models); None where the store lacks it."""
        return _stored_threshold(self.tag)

    async def ready(self) -> bool:
        if not self.health.polling or self.health.up is None:  # nothing known yet: ask now
            await self.health.check()
        return bool(self.health.up)
