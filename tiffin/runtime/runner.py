"""What every runner service shares: load its model from the store once per worker,
warm it up, and report ready only then."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from tiffin import families, store
from tiffin.runtime import logs, malloc
from tiffin.runtime.gc_pauses import FreezesStartupObjects

log = logging.getLogger("tiffin")


class ModelRunner(FreezesStartupObjects):
    """Mixin for `@bentoml.service` classes that set `family` (the tiffin.families entry they
    serve) and `model_ref` (its BentoModel, by `family.tag`)."""

    family: families.Family
    model_ref: object  # bentoml.models.BentoModel; resolves to the stored model on instances

    def __init__(self) -> None:
        logs.configure()
        malloc.keep_batch_buffers()  # before the model allocates anything
        start = time.perf_counter()
        stored = self.model_ref
        self.tag = str(stored.tag)
        config = json.loads((Path(stored.path) / store.CONFIG).read_text())
        self.device = store.pick_device()
        self.predictor = families.build(Path(stored.path), config, self.device)
        self._ready = True
        log.info("loaded %s on %s in %.2f s", self.tag, self.device, time.perf_counter() - start)

    def answers(self, probs) -> list[dict]:
        """(N, classes) probabilities -> one answer per item, keyed by the model's own class names."""
        names = self.predictor.classes
        return [{"probabilities": dict(zip(names, row.tolist())), "model": self.tag, "batch_size": len(probs)} for row in probs]

    def __is_ready__(self) -> bool:
        return getattr(self, "_ready", False)
