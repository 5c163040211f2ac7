"""Image runner: the image classifier (the Fashion-MNIST CNN, or any model with an image
predictor, e.g. the benchmark ResNet-50 via TIFFIN_IMAGE_MODEL) behind one batcher, reached
by the typed `/classify_image`, the hot path (`/fast/classify`, and its own port) and
`/classify` (for the gateway)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
import torch
from pydantic import AfterValidator, Field

from tiffin import store
from tiffin.api import frontdoor
from tiffin.api.endpoints import Endpoints
from tiffin.families import fashion
from tiffin.runtime.hotpath import HotPath
from tiffin.runtime.layout import execution_threads, gil_switch_seconds, image_max_batch, image_workers
from tiffin.runtime.runner import ModelRunner
from tiffin.wire.images import check_batch
from tiffin.wire.schemas import ImageResult

HOT_PATH = HotPath()
# The gateway's input, checked per request against the loaded model's input shape
# (HOT_PATH.shape, set when the model loads) before it joins a batch.
Pixels = Annotated[np.ndarray, AfterValidator(lambda pixels: check_batch(pixels, HOT_PATH.shape))]
WEIGHTS_BYTES = store.weights_bytes(fashion.FAMILY.tag)  # picks the CPU layout (tiffin/runtime/layout.py)


@bentoml.service(name="tiffin-image", workers=image_workers(store.pick_device(), WEIGHTS_BYTES), traffic={"timeout": 30})
class ImageRunner(ModelRunner):
    family = fashion.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    def __init__(self) -> None:
        device = store.pick_device()
        model_threads, intra_op = execution_threads(device, WEIGHTS_BYTES)
        torch.set_num_threads(intra_op)
        sys.setswitchinterval(gil_switch_seconds())
        super().__init__(threads=model_threads, max_batch=image_max_batch(device))
        HOT_PATH.attach(self.backend)
        self.endpoints = Endpoints(image=self.backend)
        frontdoor.attach(self.endpoints)

    @bentoml.api(route="/classify_image")
    async def classify_image(
        self, image: Annotated[Path, Field(description="a PNG or JPEG of a garment, any size, grey or colour")]
    ) -> ImageResult:
        """Classify a garment picture into one of the ten Fashion-MNIST classes."""
        return await frontdoor.typed(self.endpoints.classify_image(image.read_bytes()), ImageResult)

    @bentoml.api
    async def classify(self, pixels: Pixels) -> list[dict]:
        """uint8 (N, 28, 28) -> per image: probability per class, model tag, batch size."""
        return await self.run(list(pixels))


# The lean route for raw bytes, POST /fast/classify (tiffin/runtime/hotpath.py).
ImageRunner.mount_asgi_app(HOT_PATH, path="/fast")
frontdoor.install(ImageRunner, {"/fast": HOT_PATH})
