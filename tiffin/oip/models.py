"""The models served over the Open Inference Protocol: one per backend of the service (the
models it serves, in this process or in runner services), described by its family's
`Signature`, and called through the same backends the typed API uses (so OIP and typed
requests are batched together)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiffin.families import Family
from tiffin.families.signature import OIPError, Signature, TensorSpec
from tiffin.runtime.asgi import GONE
from tiffin.runtime.backends import Backend
from tiffin.runtime.batcher import ClientGone, Overloaded
from tiffin.runtime.remote import RunnerFailed
from tiffin.versions import traffic
from tiffin.wire.limits import MAX_OIP_ITEMS


@dataclass
class OIPModel:
    family: Family
    backend: Backend  # the model, in this process or in a runner service

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def signature(self) -> Signature:
        return self.family.signature

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.backend.versions,
            "platform": "pytorch_bentoml",
            "inputs": [t.as_dict() for t in self.signature.inputs],
            "outputs": [t.as_dict() for t in self.signature.outputs],
        }

    def config(self) -> dict[str, Any]:
        """The model configuration in Triton's form (what `GET .../config` and gRPC ModelConfig
        answer; perf_analyzer reads it before it sends anything): the batch dimension is
        Triton's `max_batch_size` (the most items one request may hold), so `dims` leave it out;
        a tensor with no other dimension is Triton's `dims: [1]` reshaped to `[]`."""

        def tensor(spec: TensorSpec) -> dict[str, Any]:
            rest = spec.shape[1:]
            out = {"name": spec.name, "data_type": "TYPE_STRING" if spec.datatype == "BYTES" else f"TYPE_{spec.datatype}"}
            return {**out, "dims": rest} if rest else {**out, "dims": [1], "reshape": {"shape": []}}

        return {
            "name": self.name,
            "platform": "pytorch_bentoml",
            "backend": "tiffin",
            "max_batch_size": MAX_OIP_ITEMS,
            "input": [tensor(t) for t in self.signature.inputs],
            "output": [tensor(t) for t in self.signature.outputs],
            # continuous batching: up to the family's batch, no wait for one to fill
            "dynamic_batching": {"preferred_batch_size": [self.backend.max_batch], "max_queue_delay_microseconds": 0},
        }

    async def infer(self, inputs: dict[str, np.ndarray], wanted: list[str] | None) -> tuple[dict[str, np.ndarray], str]:
        """The outputs, and the version that answered."""
        sig = self.signature
        expected = {t.name for t in sig.inputs}
        if set(inputs) != expected:
            got = sorted(inputs)
            shown = ", ".join(got[:5]) + (f" and {len(got) - 5} more" if len(got) > 5 else "")
            raise OIPError(f"model {self.name} takes inputs {sorted(expected)}, got {shown[:300]}")
        unknown = set(wanted or []) - {t.name for t in sig.outputs}
        if unknown:
            raise OIPError(f"model {self.name} has no output(s) {sorted(unknown)}; it has {[t.name for t in sig.outputs]}")
        # Decoding images (BYTES) or checking large tensors runs in a thread: the loop keeps answering.
        if any(x.dtype == np.object_ or x.nbytes > 256 * 1024 for x in inputs.values()):
            batch = await asyncio.to_thread(sig.prepare, inputs)
        else:
            batch = sig.prepare(inputs)
        if len(batch) == 0:
            raise OIPError("the request holds no items")
        if len(batch) > MAX_OIP_ITEMS:
            raise OIPError(f"{len(batch)} items in one request; at most {MAX_OIP_ITEMS}")
        try:
            answers = await self.backend.predict(list(batch))
        except Overloaded as exc:
            raise OIPError(str(exc), 503, "UNAVAILABLE") from None
        except ClientGone as exc:
            raise OIPError(str(exc), GONE, "CANCELLED") from None
        except RunnerFailed as exc:
            raise OIPError(str(exc), 502, "UNAVAILABLE") from None
        except traffic.NotServed as exc:
            raise OIPError(str(exc), 404, "NOT_FOUND") from None
        out = sig.answer(answers)
        return {k: v for k, v in out.items() if not wanted or k in wanted}, answers[0]["model"].rpartition(":")[2]


class Registry:
    """Looks models up by name (and version, one of those served)."""

    def __init__(self, backends: list[Backend]):
        self.models = {b.family.name: OIPModel(b.family, b) for b in backends if b.family.signature is not None}

    def get(self, name: str, version: str = "") -> OIPModel:
        model = self.models.get(name)
        if model is None:
            raise OIPError(f"unknown model {name!r}; served: {', '.join(self.models)}", 404, "NOT_FOUND")
        served = model.backend.versions
        if version and version not in served:
            raise OIPError(f"model {name} has no version {version!r}; served: {', '.join(served)}", 404, "NOT_FOUND")
        return model

    async def ready(self, name: str) -> bool:
        return await self.models[name].backend.ready()

    async def all_ready(self) -> bool:
        return all(await asyncio.gather(*(self.ready(n) for n in self.models)))
