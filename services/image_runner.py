"""Image runner: batches uint8 images and runs the image classifier (the Fashion-MNIST CNN,
or any model with an image predictor, e.g. the benchmark ResNet-50 via TIFFIN_IMAGE_MODEL)."""

from __future__ import annotations

import sys
from typing import Annotated

import bentoml
import numpy as np
import torch
from pydantic import AfterValidator

from tiffin import store
from tiffin.config import settings
from tiffin.families import fashion
from tiffin.runtime.hotpath import MAX_BODY, HotPath, Metrics
from tiffin.runtime.http1 import Listener
from tiffin.runtime.layout import execution_threads, gil_switch_seconds, image_workers
from tiffin.runtime.runner import ModelRunner
from tiffin.wire.images import check_batch

HOT_PATH = HotPath()
# The typed route's input, checked per request against the loaded model's input shape
# (HOT_PATH.shape, set when the model loads) before it joins a batch.
Pixels = Annotated[np.ndarray, AfterValidator(lambda pixels: check_batch(pixels, HOT_PATH.shape))]
WEIGHTS_BYTES = store.weights_bytes(fashion.FAMILY.tag)  # picks the CPU layout (tiffin/runtime/layout.py)


@bentoml.service(name="tiffin-image", workers=image_workers(store.pick_device(), WEIGHTS_BYTES), traffic={"timeout": 30})
class ImageRunner(ModelRunner):
    family = fashion.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    def __init__(self) -> None:
        model_threads, intra_op = execution_threads(store.pick_device(), WEIGHTS_BYTES)
        torch.set_num_threads(intra_op)
        sys.setswitchinterval(gil_switch_seconds())
        super().__init__()
        # The hot path's batcher. Batches of 64 fill our 2 CPU cores (raw throughput stops
        # growing past 32-64, see `make bench`); a GPU wants 128. 1024 queued items keep
        # 512 closed-loop clients queued, not refused, at ~0.5 s of work on this machine;
        # past the 10 s deadline a request is refused, not run.
        config = settings()
        self.hot_metrics = Metrics.get()
        HOT_PATH.attach(
            self.predictor,
            self.tag,
            self.predictor.classes,
            self.predictor.input_shape,
            self.hot_metrics,
            max_batch=config.hot_max_batch or (128 if self.device.type == "cuda" else 64),
            max_wait_ms=config.hot_max_wait_ms,
            max_queue=config.hot_max_queue,
            deadline_s=config.hot_deadline_s,
            name="image-hot-path",
            threads=model_threads,
        )
        self.listener = (
            None
            if config.fast_port is None
            else Listener(HOT_PATH.handle, HOT_PATH.refuse, config.fast_host, config.fast_port, max_body=MAX_BODY)
        )

    @bentoml.on_startup
    async def start_hot_path(self) -> None:
        if self.listener is not None:
            await self.listener.start()

    @bentoml.on_shutdown
    async def stop_hot_path(self) -> None:
        if self.listener is not None:
            await self.listener.stop()

    # A forward pass of 64 images takes ~10-30 ms on our 2 CPU cores and 64 fills the
    # cores; larger batches only add latency here. max_latency_ms is BentoML's bound on
    # queue+compute time before it sheds a request with 503: the hot path's 10 s deadline,
    # so that bursts queue instead of failing (at 1 s, 256 clients of the typed API saw
    # 2-30 % 503s in `make bench`).
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=10_000)
    def classify(self, pixels: Pixels) -> list[dict]:
        """uint8 (N, 28, 28) -> per image: probability per class, model tag, batch size."""
        return self.answers(self.predictor(pixels))


# The lean route is also mounted on BentoML's port, at POST /fast/classify, for platforms
# that expose a single port; the listener on TIFFIN_FAST_PORT skips BentoML's middlewares.
ImageRunner.mount_asgi_app(HOT_PATH, path="/fast")
