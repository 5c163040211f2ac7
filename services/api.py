"""The all-in-one API: every model in this one process, each behind one continuous batcher
that its typed route, the OIP (REST and gRPC) and the image hot path share; no request
crosses a process boundary. Serve it with `bentoml serve services.api:Tiffin` (what
`make serve` runs). The same routes over runner services deployed apart: services/gateway.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import bentoml
import torch
from pydantic import Field

from services.public import OIP_APP, ScoresFiles, ServesOIPOverGRPC, mount
from tiffin import store
from tiffin.api import admin, frontdoor
from tiffin.api.endpoints import Endpoints
from tiffin.families import bikeshare, fashion, minilm, textcnn
from tiffin.oip.models import Registry
from tiffin.runtime import logs, malloc
from tiffin.runtime.backends import InProcess
from tiffin.runtime.gc_pauses import FreezesStartupObjects
from tiffin.runtime.hotpath import HotPath
from tiffin.runtime.layout import gil_switch_seconds, image_max_batch, shared_process_threads, shared_workers
from tiffin.runtime.model_check import ChecksModelsFirst
from tiffin.runtime.respawn import RespawnsWorkers
from tiffin.versions.follow import FollowsAliases
from tiffin.wire.schemas import DemandFeatures, DemandResult, ImageResult, TextRequest, TextResult

HOT_PATH = HotPath()


@bentoml.service(name="tiffin", workers=shared_workers(store.pick_device()), traffic={"timeout": 60})
class Tiffin(ChecksModelsFirst, RespawnsWorkers, ServesOIPOverGRPC, ScoresFiles, FollowsAliases, FreezesStartupObjects):
    image_model = bentoml.models.BentoModel(fashion.FAMILY.tag)
    text_small_model = bentoml.models.BentoModel(textcnn.FAMILY.tag)
    text_large_model = bentoml.models.BentoModel(minilm.FAMILY.tag)
    demand_model = bentoml.models.BentoModel(bikeshare.FAMILY.tag)

    def __init__(self) -> None:
        logs.configure()
        malloc.keep_batch_buffers()  # before the models allocate anything
        device = store.pick_device()
        threads, torch_threads = shared_process_threads(device)
        torch.set_num_threads(torch_threads)
        sys.setswitchinterval(gil_switch_seconds())
        self.endpoints = Endpoints(
            image=InProcess.load(fashion.FAMILY, self.image_model, device, threads=threads, max_batch=image_max_batch(device)),
            text_small=InProcess.load(textcnn.FAMILY, self.text_small_model, device, threads=threads),
            text_large=InProcess.load(minilm.FAMILY, self.text_large_model, device, threads=threads),
            demand=InProcess.load(bikeshare.FAMILY, self.demand_model, device),
        )
        frontdoor.attach(self.endpoints)
        HOT_PATH.attach(self.endpoints.image)
        self.oip = Registry(self.endpoints.backends)
        OIP_APP.state.registry = self.oip

    @bentoml.api(route="/classify_image")
    async def classify_image(
        self,
        image: Annotated[
            Path, Field(description="a PNG or JPEG of a garment, any size, grey or colour (try services/examples/ankle-boot.png)")
        ],
    ) -> ImageResult:
        """Classify a garment picture into one of the ten Fashion-MNIST classes. Try it in the [playground](./playground/)."""
        return await frontdoor.typed(self.endpoints.classify_image(image.read_bytes()), ImageResult)

    @bentoml.api(route="/classify_text", input_spec=TextRequest)
    async def classify_text(self, text: str, tier: str = "small") -> TextResult:
        """Say whether a movie-review snippet is fresh (positive) or rotten (negative). Try it in the [playground](./playground/)."""
        return await frontdoor.typed(self.endpoints.classify_text(text, tier), TextResult)

    @bentoml.api(route="/predict_demand", input_spec=DemandFeatures)
    async def predict_demand(self, **features) -> DemandResult:
        """Predict how many bikes will be rented in one hour of the given calendar and weather. Try it in the
        [playground](./playground/)."""
        return await frontdoor.typed(self.endpoints.predict_demand(features), DemandResult)


mount(Tiffin)
# Model versions and aliases (tiffin/api/admin.py): here only, where the models are; the gateway's
# runners follow the alias book of their own hosts.
Tiffin.mount_asgi_app(admin.build_app(), path="/admin")
Tiffin.mount_asgi_app(HOT_PATH, path="/fast")
frontdoor.install(Tiffin, {"/v2": OIP_APP, "/fast": HOT_PATH})
