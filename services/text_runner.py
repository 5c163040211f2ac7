"""Sentiment runners: the small TextCNN tier and the large MiniLM tier, each its own
service so a platform can scale (and place on a GPU) each on its own."""

from __future__ import annotations

import bentoml

from tiffin.families import minilm, textcnn
from tiffin.runtime.runner import ModelRunner


@bentoml.service(name="tiffin-text-small", workers=1, traffic={"timeout": 30})
class TextSmallRunner(ModelRunner):
    family = textcnn.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    # The TextCNN costs well under 1 ms per snippet on CPU: batches of 64 amortise the
    # per-call overhead, which dominates here.
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def classify(self, texts: list[str]) -> list[dict]:
        return self.answers(self.predictor(texts))


@bentoml.service(name="tiffin-text-large", workers=1, traffic={"timeout": 60})
class TextLargeRunner(ModelRunner):
    family = minilm.FAMILY
    model_ref = bentoml.models.BentoModel(family.tag)

    # MiniLM costs a few ms per snippet on 2 CPU cores; 32 keeps a batch near 100 ms
    # there, and on a GPU it is still cheap. The latency bound is wider to match.
    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=3000)
    def classify(self, texts: list[str]) -> list[dict]:
        return self.answers(self.predictor(texts))
