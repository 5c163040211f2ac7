"""Bike-share demand runner: batches feature rows and runs the MLP."""

from __future__ import annotations

import bentoml

from tiffin.families import bikeshare
from tiffin.runtime.runner import ModelRunner
from tiffin.wire.schemas import DemandFeatures


@bentoml.service(name="tiffin-demand", workers=1, traffic={"timeout": 30})
class DemandRunner(ModelRunner):
    family = bikeshare.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    # The MLP is microseconds per row: large batches cost nothing, so take up to 256.
    @bentoml.api(batchable=True, max_batch_size=256, max_latency_ms=1000)
    def predict(self, rows: list[DemandFeatures]) -> list[dict]:
        # Typed rows: each request is checked before it joins a batch, where a bad row would
        # fail every request batched with it.
        counts = self.predictor([row.model_dump() for row in rows])
        return [{"bikers": float(c), "model": self.tag, "batch_size": len(counts)} for c in counts]
