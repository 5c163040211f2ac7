"""Fashion-MNIST runner: batches 28x28 images and runs the CNN."""

from __future__ import annotations

import os

import bentoml
import numpy as np

from tiffin import store
from tiffin.batcher import Batcher
from tiffin.hotpath import HotPath
from tiffin.serving import ModelRunner

HOT_PATH = HotPath()


@bentoml.service(name="tiffin-image", workers=1, traffic={"timeout": 30})
class ImageRunner(ModelRunner):
    model_ref = bentoml.models.BentoModel(store.IMAGE.tag)

    def __init__(self) -> None:
        super().__init__()
        # The hot path's batcher: 64 fills our 2 CPU cores (raw throughput stops growing
        # past 32-64, see `make bench`); 1024 queued items is ~0.3 s of work at the
        # measured ~3,400 img/s; past the 10 s deadline a request is refused, not run.
        HOT_PATH.attach(Batcher(self.predictor, max_batch=int(os.environ.get("TIFFIN_HOT_MAX_BATCH", 64)),
                                max_queue=int(os.environ.get("TIFFIN_HOT_MAX_QUEUE", 1024)),
                                deadline_s=float(os.environ.get("TIFFIN_HOT_DEADLINE_S", 10)), name="image-hot-path"),
                        self.tag, self.predictor.config["classes"])

    # A forward pass of 64 images takes ~10 ms on our 2 CPU cores and 64 fills the
    # cores; larger batches only add latency here. max_latency_ms is BentoML's bound on
    # queue+compute time before it sheds a request with 503: set well above a batch's
    # cost so bursts queue instead of failing.
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def classify(self, pixels: np.ndarray) -> list[dict]:
        """uint8 (N, 28, 28) -> per image: probability per class, model tag, batch size."""
        return self.answers(self.predictor(pixels))


# Served alone (`bentoml serve services.image_runner:ImageRunner`, the image bento), the
# runner exposes the lean route at POST /fast/classify beside its typed API.
ImageRunner.mount_asgi_app(HOT_PATH, path="/fast")
