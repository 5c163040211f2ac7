"""Bike-share demand runner: the typed `/predict_demand`, and `/predict` for the gateway."""

from __future__ import annotations

import bentoml

from tiffin.api import frontdoor
from tiffin.api.endpoints import Endpoints
from tiffin.families import bikeshare
from tiffin.runtime.runner import ModelRunner
from tiffin.wire.schemas import DemandFeatures, DemandResult


@bentoml.service(name="tiffin-demand", workers=1, traffic={"timeout": 30})
class DemandRunner(ModelRunner):
    family = bikeshare.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    def __init__(self) -> None:
        super().__init__()
        self.endpoints = Endpoints(demand=self.backend)
        frontdoor.attach(self.endpoints)

    @bentoml.api(route="/predict_demand", input_spec=DemandFeatures)
    async def predict_demand(self, **features) -> DemandResult:
        return await frontdoor.typed(self.endpoints.predict_demand(features), DemandResult)

    @bentoml.api
    async def predict(self, rows: list[DemandFeatures]) -> list[dict]:
        # Typed rows: each request is checked before it joins a batch, where a bad row would
        # fail every request batched with it.
        return await self.run([row.model_dump() for row in rows])


frontdoor.install(DemandRunner)
