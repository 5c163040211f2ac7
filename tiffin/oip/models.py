"""The models served over the Open Inference Protocol: one per runner the API service depends
on, described by its family's `Signature`, and called through the same runners the typed API
uses (so OIP and typed requests are batched together)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiffin.families import Family
from tiffin.families.signature import OIPError, Signature
from tiffin.runtime.remote import RunnerBusy, ask
from tiffin.wire.limits import MAX_OIP_ITEMS


@dataclass
class OIPModel:
    family: Family
    runner: Any  # the API service's handle on the runner that serves the family
    max_batch: int = MAX_OIP_ITEMS  # the largest call the runner's API accepts

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def signature(self) -> Signature:
        return self.family.signature

    def metadata(self, version: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [version],
            "platform": "pytorch_bentoml",
            "inputs": [t.as_dict() for t in self.signature.inputs],
            "outputs": [t.as_dict() for t in self.signature.outputs],
        }

    async def infer(self, inputs: dict[str, np.ndarray], wanted: list[str] | None) -> dict[str, np.ndarray]:
        sig = self.signature
        expected = {t.name for t in sig.inputs}
        if set(inputs) != expected:
            raise OIPError(f"model {self.name} takes inputs {sorted(expected)}, got {sorted(inputs)}")
        unknown = set(wanted or []) - {t.name for t in sig.outputs}
        if unknown:
            raise OIPError(f"model {self.name} has no output(s) {sorted(unknown)}; it has {[t.name for t in sig.outputs]}")
        batch = sig.prepare(inputs)
        if len(batch) == 0:
            raise OIPError("the request holds no items")
        if len(batch) > MAX_OIP_ITEMS:
            raise OIPError(f"{len(batch)} items in one request; at most {MAX_OIP_ITEMS}")
        # A runner refuses a call larger than its max_batch_size: send chunks of at most
        # that many, together, and let its batcher combine them with other requests.
        call = getattr(self.runner.to_async, sig.method)
        chunks = [batch[i : i + self.max_batch] for i in range(0, len(batch), self.max_batch)]
        try:
            answers = [a for part in await asyncio.gather(*(ask(call, c) for c in chunks)) for a in part]
        except RunnerBusy as exc:
            raise OIPError(str(exc), 503, "UNAVAILABLE") from None
        out = sig.answer(answers)
        return {k: v for k, v in out.items() if not wanted or k in wanted}


class Registry:
    """Looks models up by name (and version) and knows each one's served version."""

    def __init__(self, models: list[OIPModel]):
        self.models = {m.name: m for m in models}
        self._versions: dict[str, str] = {}

    @classmethod
    def of(cls, service: Any, instance: Any) -> Registry:
        """Every runner `service` depends on whose class names a `family` with a signature,
        reached through `instance` (the running service), in the order the service declares
        them (BentoML lists its dependencies alphabetically)."""
        models = []
        for attr in (a for a in vars(service.inner) if a in service.dependencies):
            dep = service.dependencies[attr]
            family = getattr(dep.on.inner, "family", None)
            if family is not None and family.signature is not None:
                max_batch = min(api.max_batch_size for api in dep.on.apis.values())
                models.append(OIPModel(family, getattr(instance, attr), max_batch))
        return cls(models)

    def version(self, name: str) -> str:
        if name not in self._versions:
            import bentoml

            self._versions[name] = bentoml.models.get(self.models[name].family.tag).tag.version
        return self._versions[name]

    def get(self, name: str, version: str = "") -> OIPModel:
        model = self.models.get(name)
        if model is None:
            raise OIPError(f"unknown model {name!r}; served: {', '.join(self.models)}", 404, "NOT_FOUND")
        if version and version != self.version(name):
            raise OIPError(f"model {name} has no version {version!r}; served: {self.version(name)}", 404, "NOT_FOUND")
        return model

    async def ready(self, name: str) -> bool:
        is_ready = getattr(self.models[name].runner, "is_ready", None)
        return True if is_ready is None else bool(await is_ready(5))

    async def all_ready(self) -> bool:
        return all(await asyncio.gather(*(self.ready(n) for n in self.models)))
