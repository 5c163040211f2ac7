"""The public API: typed endpoints that validate input and compose the model runners.

Serve everything with `bentoml serve services.api:Tiffin` (what `make serve` runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import bentoml
from pydantic import Field
from starlette.responses import JSONResponse

from services.demand_runner import DemandRunner
from services.image_runner import ImageRunner
from services.text_runner import TextLargeRunner, TextSmallRunner
from tiffin.config import settings
from tiffin.oip.models import Registry
from tiffin.oip.rest import V2Root, build_app
from tiffin.playground import PlaygroundRoot
from tiffin.playground import app as playground
from tiffin.runtime import logs, uploads
from tiffin.runtime.gc_pauses import FreezesStartupObjects
from tiffin.runtime.guard import RequestGuard, Rule
from tiffin.runtime.remote import RunnerBusy, ask
from tiffin.wire.images import InvalidImage
from tiffin.wire.schemas import DemandFeatures, DemandResult, ImageResult, TextRequest, TextResult

OIP_APP = build_app()


def top(answer: dict) -> str:
    probs = answer["probabilities"]
    return max(probs, key=probs.__getitem__)


def bad_input(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def busy(exc: RunnerBusy) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})


@bentoml.service(name="tiffin", workers=1, traffic={"timeout": 60, "max_concurrency": 512})
class Tiffin(FreezesStartupObjects):
    image_runner = bentoml.depends(ImageRunner)
    text_small = bentoml.depends(TextSmallRunner)
    text_large = bentoml.depends(TextLargeRunner)
    demand_runner = bentoml.depends(DemandRunner)

    def __init__(self) -> None:
        logs.configure()
        self.oip = Registry.of(Tiffin, self)  # every runner above, by its family's OIP signature
        OIP_APP.state.registry = self.oip
        self._grpc = None

    @bentoml.on_startup
    async def start_grpc(self) -> None:
        # Imported here: the generated protobuf module registers the `inference` package
        # globally, which clashes with other OIP clients (tritonclient) imported beside
        # this module, e.g. in tests or tools that only read the service definition.
        from tiffin.oip import grpc_server

        self._grpc = await grpc_server.start(self.oip, settings().grpc_host, settings().grpc_port)

    @bentoml.on_shutdown
    async def stop_grpc(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=5)

    @bentoml.api(route="/classify_image")
    async def classify_image(
        self,
        image: Annotated[
            Path, Field(description="a PNG or JPEG of a garment, any size, grey or colour (try services/examples/ankle-boot.png)")
        ],
    ) -> ImageResult:
        """Classify a garment picture into one of the ten Fashion-MNIST classes. Try it in the [playground](./playground/)."""
        try:
            pixels = await uploads.decode(image.read_bytes())
        except InvalidImage as exc:
            return bad_input(str(exc))
        try:
            [answer] = await ask(self.image_runner.to_async.classify, pixels[None])
        except RunnerBusy as exc:
            return busy(exc)
        return ImageResult(label=top(answer), **answer)

    @bentoml.api(route="/classify_text", input_spec=TextRequest)
    async def classify_text(self, text: str, tier: str = "small") -> TextResult:
        """Say whether a movie-review snippet is fresh (positive) or rotten (negative). Try it in the [playground](./playground/)."""
        if not text.strip():
            return bad_input("text is blank; send a review snippet with some words in it")
        runner = self.text_large if tier == "large" else self.text_small
        answered = "large" if tier == "large" else "small"
        try:
            [answer] = await ask(runner.to_async.classify, [text])
            if tier == "auto" and answer["probabilities"][top(answer)] < settings().cascade_threshold:
                [answer] = await ask(self.text_large.to_async.classify, [text])
                answered = "large"
        except RunnerBusy as exc:
            return busy(exc)
        label = top(answer)
        return TextResult(
            label=label,
            probability=answer["probabilities"][label],
            model=answer["model"],
            tier=answered,
            batch_size=answer["batch_size"],
        )

    @bentoml.api(route="/predict_demand", input_spec=DemandFeatures)
    async def predict_demand(self, **features) -> DemandResult:
        """Predict how many bikes will be rented in one hour of the given calendar and weather. Try it in the
        [playground](./playground/)."""
        try:
            [answer] = await ask(self.demand_runner.to_async.predict, [features])
        except RunnerBusy as exc:
            return busy(exc)
        return DemandResult(**answer)


Tiffin.mount_asgi_app(OIP_APP, path="/v2")
Tiffin.mount_asgi_app(playground, path="/playground")
Tiffin.add_asgi_middleware(V2Root)
Tiffin.add_asgi_middleware(PlaygroundRoot)
Tiffin.add_asgi_middleware(
    RequestGuard,
    rules={
        "/classify_image": Rule("multipart/form-data", settings().max_image_bytes, form_fields=frozenset({"image"})),
        "/classify_text": Rule("application/json", settings().max_json_bytes),
        "/predict_demand": Rule("application/json", settings().max_json_bytes),
    },
)
