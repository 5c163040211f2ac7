"""The models served over the Open Inference Protocol: their tensor signatures, and how
a request's tensors become a call to the same runners the typed API uses (so OIP and
typed requests are batched together)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import numpy as np
from pydantic import ValidationError

from tiffin import image, store
from tiffin.schemas import DemandFeatures, TextRequest
from tiffin.demand import FEATURES
from tiffin.remote import RunnerBusy, ask

MAX_ITEMS = 256  # per request; larger batches should be split by the client


class OIPError(Exception):
    """An error with both protocol mappings: HTTP status and gRPC status code name."""

    def __init__(self, message: str, http: int = 400, grpc: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.http, self.grpc = http, grpc


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


RunnerCall = Callable[[Any], Awaitable[list[dict]]]


@dataclass
class OIPModel:
    spec: store.ModelSpec
    runner: str  # attribute of the API service holding the runner
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    prepare: Callable[[dict[str, np.ndarray]], Any] = field(repr=False)
    method: str = "classify"

    @property
    def name(self) -> str:
        return self.spec.name

    def metadata(self, version: str) -> dict[str, Any]:
        return {"name": self.name, "versions": [version], "platform": "pytorch_bentoml",
                "inputs": [t.as_dict() for t in self.inputs], "outputs": [t.as_dict() for t in self.outputs]}

    async def infer(self, service: Any, inputs: dict[str, np.ndarray], wanted: list[str] | None,
                    chunk: int = MAX_ITEMS) -> dict[str, np.ndarray]:
        expected = {t.name for t in self.inputs}
        if set(inputs) != expected:
            raise OIPError(f"model {self.name} takes inputs {sorted(expected)}, got {sorted(inputs)}")
        unknown = set(wanted or []) - {t.name for t in self.outputs}
        if unknown:
            raise OIPError(f"model {self.name} has no output(s) {sorted(unknown)}; it has {[t.name for t in self.outputs]}")
        batch = self.prepare(inputs)
        if len(batch) == 0:
            raise OIPError("the request holds no items")
        if len(batch) > MAX_ITEMS:
            raise OIPError(f"{len(batch)} items in one request; at most {MAX_ITEMS}")
        # A runner refuses a call larger than its max_batch_size: send chunks of at most
        # that many, together, and let its batcher combine them with other requests.
        call = getattr(getattr(service, self.runner).to_async, self.method)
        chunks = [batch[i : i + chunk] for i in range(0, len(batch), chunk)]
        try:
            answers = [a for part in await asyncio.gather(*(ask(call, c) for c in chunks)) for a in part]
        except RunnerBusy as exc:
            raise OIPError(str(exc), 503, "UNAVAILABLE") from None
        out = _outputs(answers)
        return {k: v for k, v in out.items() if not wanted or k in wanted}


def _outputs(answers: list[dict]) -> dict[str, np.ndarray]:
    if "bikers" in answers[0]:
        return {"bikers": np.array([a["bikers"] for a in answers], dtype=np.float32)}
    names = list(answers[0]["probabilities"])
    probs = np.array([[a["probabilities"][n] for n in names] for a in answers], dtype=np.float32)
    labels = np.array([names[i].encode() for i in probs.argmax(1)], dtype=np.object_)
    return {"probabilities": probs, "label": labels}


def _items(array: np.ndarray, name: str) -> np.ndarray:
    """Accept [N] or [N, 1] for one value per item."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise OIPError(f"input {name} must have shape [N] or [N, 1], got {list(array.shape)}")
    return array


def _prepare_image(inputs: dict[str, np.ndarray]) -> np.ndarray:
    x = inputs["image"]
    if x.dtype in (np.uint8, np.float16, np.float32):
        if x.ndim != 3 or x.shape[1:] != (image.SIDE, image.SIDE):
            raise OIPError(f"input image must have shape [N, {image.SIDE}, {image.SIDE}], got {list(x.shape)}")
        if x.dtype == np.uint8:
            return np.ascontiguousarray(x)
        # FP16/FP32 pixels are intensities in 0..1 (what a client that normalised already holds).
        if not np.isfinite(x).all() or x.min(initial=0) < 0 or x.max(initial=0) > 1:
            raise OIPError("FP16/FP32 input image must hold finite intensities in 0..1")
        return np.rint(x.astype(np.float32) * 255).astype(np.uint8)
    if x.dtype == np.object_:
        try:
            return np.stack([image.decode_image(bytes(b)) for b in _items(x, "image")]) if x.size else np.zeros((0, 28, 28), np.uint8)
        except image.InvalidImage as exc:
            raise OIPError(str(exc)) from None
    raise OIPError("input image must be UINT8 pixels [N, 28, 28] (or FP16/FP32 in 0..1), or BYTES [N] holding PNG/JPEG files")


def _prepare_text(inputs: dict[str, np.ndarray]) -> list[str]:
    x = inputs["text"]
    if x.dtype != np.object_:
        raise OIPError("input text must be a BYTES tensor of UTF-8 strings")
    texts = []
    for raw in _items(x, "text"):
        try:
            text = bytes(raw).decode("utf-8")
            TextRequest(text=text)
        except UnicodeDecodeError:
            raise OIPError("input text holds bytes that are not UTF-8") from None
        except ValidationError as exc:
            raise OIPError(f"input text: {exc.errors()[0]['msg']}") from None
        if not text.strip():
            raise OIPError("input text holds a blank string")
        texts.append(text)
    return texts


def _prepare_demand(inputs: dict[str, np.ndarray]) -> list[dict]:
    columns = {name: _items(inputs[name], name) for name in FEATURES}
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise OIPError(f"every demand input needs the same number of items, got sizes {sorted(sizes)}")
    rows = []
    for i in range(sizes.pop()):
        row = {k: (v[i].decode() if isinstance(v[i], bytes) else v[i].item()) for k, v in columns.items()}
        try:
            rows.append(DemandFeatures(**row).model_dump())
        except ValidationError as exc:
            err = exc.errors()[0]
            raise OIPError(f"item {i}, input {err['loc'][0]}: {err['msg']}") from None
    return rows


_INT = ["season", "hr", "holiday", "weekday", "workingday"]
MODELS: dict[str, OIPModel] = {m.name: m for m in [
    OIPModel(store.IMAGE, "image_runner",
             [TensorSpec("image", "UINT8", [-1, image.SIDE, image.SIDE])],
             [TensorSpec("probabilities", "FP32", [-1, len(image.CLASSES)]), TensorSpec("label", "BYTES", [-1])],
             _prepare_image),
    OIPModel(store.TEXT_SMALL, "text_small", [TensorSpec("text", "BYTES", [-1])],
             [TensorSpec("probabilities", "FP32", [-1, 2]), TensorSpec("label", "BYTES", [-1])], _prepare_text),
    OIPModel(store.TEXT_LARGE, "text_large", [TensorSpec("text", "BYTES", [-1])],
             [TensorSpec("probabilities", "FP32", [-1, 2]), TensorSpec("label", "BYTES", [-1])], _prepare_text),
    OIPModel(store.DEMAND, "demand_runner",
             [TensorSpec(n, "INT64" if n in _INT else "BYTES" if n in ("mnth", "weathersit") else "FP32", [-1])
              for n in FEATURES],
             [TensorSpec("bikers", "FP32", [-1])], _prepare_demand, method="predict"),
]}


class Registry:
    """Looks models up by name (and version) and knows each one's served version."""

    def __init__(self, service: Any, max_batch: dict[str, int] | None = None):
        """`max_batch`: runner attribute -> the max_batch_size its API accepts per call."""
        self.service = service
        self.max_batch = max_batch or {}
        self._versions: dict[str, str] = {}

    def version(self, name: str) -> str:
        if name not in self._versions:
            import bentoml

            self._versions[name] = bentoml.models.get(MODELS[name].spec.tag).tag.version
        return self._versions[name]

    def get(self, name: str, version: str = "") -> OIPModel:
        model = MODELS.get(name)
        if model is None:
            raise OIPError(f"unknown model {name!r}; served: {', '.join(MODELS)}", 404, "NOT_FOUND")
        if version and version != self.version(name):
            raise OIPError(f"model {name} has no version {version!r}; served: {self.version(name)}", 404, "NOT_FOUND")
        return model

    async def infer(self, model: OIPModel, inputs: dict[str, np.ndarray], wanted: list[str] | None) -> dict[str, np.ndarray]:
        return await model.infer(self.service, inputs, wanted, self.max_batch.get(model.runner, MAX_ITEMS))

    async def ready(self, name: str) -> bool:
        runner = getattr(self.service, MODELS[name].runner)
        is_ready = getattr(runner, "is_ready", None)
        return True if is_ready is None else bool(await is_ready(5))

    async def all_ready(self) -> bool:
        return all(await asyncio.gather(*(self.ready(n) for n in MODELS)))
