"""Baseline: the same predictor behind stock BentoML adaptive batching with its default
knobs (`@bentoml.api(batchable=True)`), JSON in and out, as BentoML's docs show it.
Run: bentoml serve bench.baselines.stock:StockImage"""

from __future__ import annotations

import bentoml
import numpy as np

from tiffin import store
from tiffin.serving import ModelRunner


@bentoml.service(name="stock-image")
class StockImage(ModelRunner):
    model_ref = bentoml.models.BentoModel(store.IMAGE.tag)

    @bentoml.api(batchable=True)
    def classify(self, pixels: np.ndarray) -> np.ndarray:
        return self.predictor(pixels.astype(np.uint8))
