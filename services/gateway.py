"""The gateway: the public API's routes over runner services deployed apart (one container,
pod or BentoCloud deployment each, scaled on its own), composed with `bentoml.depends`.
Serve it with `bentoml serve services.gateway:Gateway` (BentoML starts each runner as a
service of its own); services/api.py serves the same routes with every model in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import bentoml
from pydantic import Field

from services.demand_runner import DemandRunner
from services.image_runner import ImageRunner
from services.public import OIP_APP, ScoresFiles, ServesOIPOverGRPC, mount
from services.text_runner import TextLargeRunner, TextSmallRunner
from tiffin.api import frontdoor
from tiffin.api.endpoints import Endpoints
from tiffin.config import settings
from tiffin.families import bikeshare, fashion, minilm, textcnn
from tiffin.oip.models import Registry
from tiffin.runtime import logs
from tiffin.runtime.backends import Remote
from tiffin.runtime.gc_pauses import FreezesStartupObjects
from tiffin.runtime.layout import image_max_batch
from tiffin.runtime.respawn import RespawnsWorkers
from tiffin.wire.schemas import DemandFeatures, DemandResult, ImageResult, TextRequest, TextResult

RUNNER_URLS = dict(settings().runner_urls)


# runner_probe off: BentoML's /readyz would ask each runner itself, waiting up to 5 s on one
# that is gone; __is_ready__ answers from what the workers' runner probes last saw.
@bentoml.service(name="tiffin-gateway", workers=1, traffic={"timeout": 60}, runner_probe={"enabled": False})
class Gateway(RespawnsWorkers, ServesOIPOverGRPC, ScoresFiles, FreezesStartupObjects):
    # each runner in this bento, or at its TIFFIN_RUNNER_URLS entry (a runner bento of its own)
    image_runner = bentoml.depends(ImageRunner, url=RUNNER_URLS.get(ImageRunner.name))
    text_small = bentoml.depends(TextSmallRunner, url=RUNNER_URLS.get(TextSmallRunner.name))
    text_large = bentoml.depends(TextLargeRunner, url=RUNNER_URLS.get(TextLargeRunner.name))
    demand_runner = bentoml.depends(DemandRunner, url=RUNNER_URLS.get(DemandRunner.name))

    def __init__(self) -> None:
        import torch

        logs.configure()
        self.endpoints = Endpoints(
            image=Remote(fashion.FAMILY, self.image_runner, image_max_batch(torch.device("cpu"))),
            text_small=Remote(textcnn.FAMILY, self.text_small, textcnn.FAMILY.max_batch),
            text_large=Remote(minilm.FAMILY, self.text_large, minilm.FAMILY.max_batch),
            demand=Remote(bikeshare.FAMILY, self.demand_runner, bikeshare.FAMILY.max_batch),
        )
        frontdoor.attach(self.endpoints)
        self.oip = Registry(self.endpoints.backends)
        OIP_APP.state.registry = self.oip

    @bentoml.on_startup
    async def watch_runners(self) -> None:
        for backend in self.endpoints.backends:
            backend.health.start(settings().runner_probe_s)

    @bentoml.on_shutdown
    async def stop_watching(self) -> None:
        for backend in self.endpoints.backends:
            backend.health.stop()

    async def __is_ready__(self) -> bool:
        """Ready when every runner was last seen ready. With TIFFIN_RUNNER_PROBE_S=0 (runners
        that scale to zero, e.g. Knative) nothing asks them, so that probes never wake them or
        keep them awake, and the gateway is ready on its own: a call to a runner at zero waits
        in the platform's activator while it starts."""
        return all(backend.health.up for backend in self.endpoints.backends if backend.health.polling)

    @bentoml.api(route="/classify_image")
    async def classify_image(
        self, image: Annotated[Path, Field(description="a PNG or JPEG of a garment, any size, grey or colour")]
    ) -> ImageResult:
        """Classify a garment picture into one of the ten Fashion-MNIST classes."""
        return await frontdoor.typed(self.endpoints.classify_image(image.read_bytes()), ImageResult)

    @bentoml.api(route="/classify_text", input_spec=TextRequest)
    async def classify_text(self, text: str, tier: str = "small") -> TextResult:
        """Say whether a movie-review snippet is fresh (positive) or rotten (negative)."""
        return await frontdoor.typed(self.endpoints.classify_text(text, tier), TextResult)

    @bentoml.api(route="/predict_demand", input_spec=DemandFeatures)
    async def predict_demand(self, **features) -> DemandResult:
        """Predict how many bikes will be rented in one hour of the given calendar and weather."""
        return await frontdoor.typed(self.endpoints.predict_demand(features), DemandResult)


mount(Gateway)
frontdoor.install(Gateway, {"/v2": OIP_APP})
