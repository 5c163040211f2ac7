"""Fashion-MNIST runner: batches 28x28 images and runs the CNN."""

from __future__ import annotations

import bentoml
import numpy as np

from tiffin import store
from tiffin.serving import ModelRunner


@bentoml.service(name="tiffin-image", workers=1, traffic={"timeout": 30})
class ImageRunner(ModelRunner):
    model_ref = bentoml.models.BentoModel(store.IMAGE.tag)

    # A forward pass of 64 images takes ~10 ms on our 2 CPU cores and 64 fills the
    # cores; larger batches only add latency here. max_latency_ms is BentoML's bound on
    # queue+compute time before it sheds a request with 503: set well above a batch's
    # cost so bursts queue instead of failing.
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def classify(self, pixels: np.ndarray) -> list[dict]:
        """uint8 (N, 28, 28) -> per image: probability per class, model tag, batch size."""
        return self.answers(self.predictor(pixels))
