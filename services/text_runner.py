"""Sentiment runners: the small TextCNN tier and the large MiniLM tier, each its own
service so a platform can scale (and place on a GPU) each on its own. Each serves the
typed `/classify_text` for its tier, and `/classify` for the gateway."""

from __future__ import annotations

import bentoml

from tiffin.api import frontdoor
from tiffin.api.endpoints import Endpoints
from tiffin.families import minilm, textcnn
from tiffin.runtime.runner import ModelRunner
from tiffin.wire.schemas import TextRequest, TextResult


@bentoml.service(name="tiffin-text-small", workers=1, traffic={"timeout": 30})
class TextSmallRunner(ModelRunner):
    family = textcnn.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    def __init__(self) -> None:
        super().__init__()
        self.endpoints = Endpoints(text_small=self.backend)
        frontdoor.attach(self.endpoints)

    @bentoml.api(route="/classify_text", input_spec=TextRequest)
    async def classify_text(self, text: str, tier: str = "small") -> TextResult:
        return await frontdoor.typed(self.endpoints.classify_text(text, tier), TextResult)

    @bentoml.api
    async def classify(self, texts: list[str]) -> list[dict]:
        return await self.run(texts)


@bentoml.service(name="tiffin-text-large", workers=1, traffic={"timeout": 60})
class TextLargeRunner(ModelRunner):
    family = minilm.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    def __init__(self) -> None:
        super().__init__()
        self.endpoints = Endpoints(text_large=self.backend)
        frontdoor.attach(self.endpoints)

    @bentoml.api(route="/classify_text", input_spec=TextRequest)
    async def classify_text(self, text: str, tier: str = "large") -> TextResult:
        return await frontdoor.typed(self.endpoints.classify_text(text, tier), TextResult)

    @bentoml.api
    async def classify(self, texts: list[str]) -> list[dict]:
        return await self.run(texts)


frontdoor.install(TextSmallRunner)
frontdoor.install(TextLargeRunner)
