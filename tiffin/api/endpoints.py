"""What the typed endpoints do, once for every service that serves them (the all-in-one API,
the gateway, each runner bento on its own) and for both ways a request arrives (the front
door, and BentoML's own route when the front door is off): check the input, ask the model's
backend, shape the answer as the schemas in tiffin/wire/schemas.py say."""

from __future__ import annotations

from dataclasses import dataclass

from tiffin.config import settings
from tiffin.runtime import uploads
from tiffin.runtime.backends import Backend
from tiffin.runtime.batcher import Overloaded
from tiffin.runtime.metrics import ModelMetrics
from tiffin.versions import traffic
from tiffin.wire import catalog
from tiffin.wire.images import InvalidImage


class BadInput(Exception):
    """The request cannot be answered as sent: `status` (4xx) and what to fix."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def top(answer: dict) -> str:
    probs = answer["probabilities"]
    return max(probs, key=probs.__getitem__)


@dataclass
class Endpoints:
    """The backends the typed routes call; a service without a model leaves it None."""

    image: Backend | None = None
    text_small: Backend | None = None
    text_large: Backend | None = None
    demand: Backend | None = None

    @property
    def backends(self) -> list[Backend]:
        return [b for b in (self.image, self.text_small, self.text_large, self.demand) if b is not None]

    @property
    def cascade_threshold(self) -> float:
        """TIFFIN_CASCADE_THRESHOLD, else the one stored with the small model, else catalog's."""
        chosen = settings().cascade_threshold
        if chosen is None and self.text_small is not None:
            chosen = self.text_small.cascade_threshold
        return catalog.CASCADE_THRESHOLD if chosen is None else chosen

    async def classify_image(self, data: bytes) -> dict:
        try:
            pixels = await uploads.decode(data)
        except InvalidImage as exc:
            self.image.refused("bad_request")
            raise BadInput(str(exc)) from None
        [answer] = await _ask(self.image, pixels)
        return {"label": top(answer), **answer}

    async def classify_text(self, text: str, tier: str = "small") -> dict:
        if not text.strip():
            raise BadInput("text is blank; send a review snippet with some words in it")
        small, large = self.text_small, self.text_large
        if (tier == "small" and small is None) or (tier == "large" and large is None):
            served = "small" if large is None else "large"
            raise BadInput(f"this service serves the {served} tier only; send tier={served} or auto")
        answered = "large" if tier == "large" or small is None else "small"
        backend = large if answered == "large" else small
        [answer] = await _ask(backend, text)
        if tier == "auto" and answered == "small" and large is not None:
            small_version = small.version
            if answer["probabilities"][top(answer)] < self.cascade_threshold:
                with traffic.without_override():  # a version asked for is the small tier's
                    [answer] = await _ask(large, text)
                answered = "large"
            ModelMetrics.get().cascade.labels(small_version, "small" if answered == "small" else "escalated").inc()
        label = top(answer)
        return {
            "label": label,
            "probability": answer["probabilities"][label],
            "model": answer["model"],
            "tier": answered,
            "batch_size": answer["batch_size"],
        }

    async def predict_demand(self, row: dict) -> dict:
        """`row`: a DemandFeatures already checked (as a dict)."""
        [answer] = await _ask(self.demand, row)
        return answer


async def _ask(backend: Backend, item) -> list[dict]:
    try:
        return await backend.predict([item])
    except Overloaded:
        backend.refused("busy")
        raise
