"""The client's calls: the typed HTTP API over httpx, or the OIP over gRPC. It imports only
tiffin.wire and the OIP's tensor code: no torch, no BentoML."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tiffin.wire import catalog
from tiffin.wire.limits import HTTP_PORT

DEFAULT_URL = f"http://localhost:{HTTP_PORT}"  # what `bentoml serve` listens on by default


@dataclass
class Prediction:
    model: str
    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    bikers: float | None = None
    tier: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


class ServerError(RuntimeError):
    """The server refused or failed a request; the message is the server's."""


def _image_bytes(image: str | Path | bytes) -> bytes:
    return image if isinstance(image, bytes) else Path(image).read_bytes()


class AsyncClient:
    """Async client. `url` for the typed HTTP API, or `grpc` (host:port) for the OIP over gRPC."""

    def __init__(self, url: str = DEFAULT_URL, *, grpc: str | None = None, timeout: float = 60):
        self.url, self.grpc_target, self.timeout = url.rstrip("/"), grpc, timeout
        self._http: httpx.AsyncClient | None = None
        self._channel = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._channel is not None:
            await self._channel.close()

    # -- HTTP -------------------------------------------------------------------
    async def _post(self, route: str, **kwargs) -> dict[str, Any]:
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.url, timeout=self.timeout)
        r = await self._http.post(route, **kwargs)
        if r.status_code >= 400:
            try:
                body = r.json()
                message = body.get("error", r.text)
                details = [f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in body.get("detail", [])]
                if details:
                    message += " (" + "; ".join(details) + ")"
            except (ValueError, AttributeError):
                message = r.text
            raise ServerError(f"HTTP {r.status_code}: {message}")
        return r.json()

    # -- gRPC -------------------------------------------------------------------
    async def _infer(self, model: str, inputs: dict[str, Any]) -> dict[str, Any]:
        import grpc
        import numpy as np

        from tiffin.oip import inference_pb2 as pb
        from tiffin.oip import inference_pb2_grpc as pb_grpc
        from tiffin.oip import tensors

        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.grpc_target)
        request = pb.ModelInferRequest(model_name=model)
        for name, array in inputs.items():
            array = np.asarray(array)
            request.inputs.add(name=name, datatype=tensors.datatype_of(array), shape=list(array.shape))
            request.raw_input_contents.append(tensors.to_raw(array))
        try:
            response = await pb_grpc.GRPCInferenceServiceStub(self._channel).ModelInfer(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise ServerError(f"gRPC {exc.code().name}: {exc.details()}") from None
        out = {}
        for t, raw in zip(response.outputs, response.raw_output_contents):
            out[t.name] = tensors.from_raw(t.datatype, list(t.shape), raw)
        out["model"] = f"{response.model_name}:{response.model_version}"
        return out

    @staticmethod
    def _classified(out: dict[str, Any], names: list[str]) -> Prediction:
        label = out["label"][0].decode()
        probabilities = dict(zip(names, out["probabilities"][0].tolist()))
        return Prediction(model=out["model"], label=label, probability=probabilities[label], probabilities=probabilities)

    # -- the three predictions --------------------------------------------------
    async def classify_image(self, image: str | Path | bytes) -> Prediction:
        data = _image_bytes(image)
        if self.grpc_target:
            import numpy as np

            out = await self._infer(catalog.FASHION, {"image": np.array([data], dtype=object)})
            return self._classified(out, catalog.FASHION_CLASSES)
        body = await self._post("/classify_image", files={"image": ("image", data)})
        return Prediction(
            model=body["model"],
            label=body["label"],
            probability=body["probabilities"][body["label"]],
            probabilities=body["probabilities"],
        )

    async def classify_text(self, text: str, tier: str = "small") -> Prediction:
        if self.grpc_target:
            import numpy as np

            first = "large" if tier == "large" else "small"
            texts = {"text": np.array([text.encode()], dtype=object)}
            pred = self._classified(await self._infer(catalog.TEXT_TIERS[first], texts), catalog.SENTIMENT_LABELS)
            # The cascade lives in the typed API; over the OIP the client runs it.
            if tier == "auto" and (pred.probability or 0) < catalog.CASCADE_THRESHOLD:
                first = "large"
                pred = self._classified(await self._infer(catalog.TEXT_LARGE, texts), catalog.SENTIMENT_LABELS)
            pred.tier = first
            return pred
        body = await self._post("/classify_text", json={"text": text, "tier": tier})
        return Prediction(model=body["model"], label=body["label"], probability=body["probability"], tier=body["tier"])

    async def predict_demand(self, **features: Any) -> Prediction:
        row = {**catalog.EXAMPLE_DEMAND_ROW, **features}
        if self.grpc_target:
            import numpy as np

            dtypes = catalog.DEMAND_DATATYPES
            inputs = {
                k: (
                    np.array([str(v).encode()], dtype=object)
                    if dtypes[k] == "BYTES"
                    else np.array([v], dtype=np.int64 if dtypes[k] == "INT64" else np.float32)
                )
                for k, v in row.items()
            }
            out = await self._infer(catalog.DEMAND, inputs)
            return Prediction(model=out["model"], bikers=float(out["bikers"][0]))
        body = await self._post("/predict_demand", json=row)
        return Prediction(model=body["model"], bikers=body["bikers"])


class Client:
    """The same calls, blocking. Runs its own event loop."""

    def __init__(self, url: str = DEFAULT_URL, *, grpc: str | None = None, timeout: float = 60):
        self._loop = asyncio.new_event_loop()
        self._async = AsyncClient(url, grpc=grpc, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run_until_complete(self._async.close())
        self._loop.close()

    def classify_image(self, image: str | Path | bytes) -> Prediction:
        return self._loop.run_until_complete(self._async.classify_image(image))

    def classify_text(self, text: str, tier: str = "small") -> Prediction:
        return self._loop.run_until_complete(self._async.classify_text(text, tier))

    def predict_demand(self, **features: Any) -> Prediction:
        return self._loop.run_until_complete(self._async.predict_demand(**features))
