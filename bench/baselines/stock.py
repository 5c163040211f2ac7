"""Baseline: the same predictor behind stock BentoML adaptive batching with its default
knobs (`@bentoml.api(batchable=True)`), JSON in and out, as BentoML's docs show it.
Run: bentoml serve bench.baselines.stock:StockImage"""

from __future__ import annotations

import bentoml
import numpy as np

from tiffin.families import fashion
from tiffin.runtime.runner import ModelRunner


@bentoml.service(name="stock-image")
class StockImage(ModelRunner):
    family = fashion.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    @bentoml.api(batchable=True)
    def classify(self, pixels: np.ndarray) -> np.ndarray:
        return self.backend.predictor(pixels.astype(np.uint8))
