"""The OIP REST front end (`/v2/...`), a Starlette app mounted inside the BentoML
service, with the binary tensor data extension that tritonclient.http uses by default."""

from __future__ import annotations

import asyncio
import functools
import json
import zlib
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tiffin import __version__
from tiffin.families.signature import OIPError
from tiffin.oip import tensors
from tiffin.oip.models import OIPModel, Registry
from tiffin.runtime import cache
from tiffin.runtime.asgi import BodyError, read_body, watch_for_disconnect
from tiffin.versions import traffic
from tiffin.wire.limits import MAX_OIP_BYTES

HEADER_LENGTH = "inference-header-content-length"
SERVER = {"name": "tiffin", "version": __version__, "extensions": ["binary_tensor_data"]}


def _error(exc: OIPError) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.http == 503 else None
    return JSONResponse({"error": str(exc)}, status_code=exc.http, headers=headers)


def _registry(request: Request) -> Registry:
    return request.app.state.registry


async def server_metadata(request: Request) -> Response:
    return JSONResponse(SERVER)


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    ok = await _registry(request).all_ready()
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


def _answers_errors(handler):
    """Turn an OIPError raised anywhere in a handler into its HTTP answer."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except OIPError as exc:
            return _error(exc)

    return wrapped


def _model(request: Request) -> OIPModel:
    """The model the path names (and, under /versions/{version}, checks the version)."""
    p = request.path_params
    return _registry(request).get(p["name"], p.get("version", ""))


@_answers_errors
async def model_metadata(request: Request) -> Response:
    model = _model(request)
    return JSONResponse(model.metadata())


@_answers_errors
async def model_config(request: Request) -> Response:
    return JSONResponse(_model(request).config())


@_answers_errors
async def model_ready(request: Request) -> Response:
    model = _model(request)
    ok = await _registry(request).ready(model.name)
    return JSONResponse({"name": model.name, "ready": ok}, status_code=200 if ok else 503)


async def _read_body(request: Request) -> bytes:
    try:
        body = await read_body(request.scope, request.receive, MAX_OIP_BYTES)
    except BodyError as exc:
        raise OIPError(str(exc), exc.status) from None
    if body is None:
        raise OIPError("the client went away", 400)
    return _decompressed(body, request.headers.get("content-encoding", "identity").strip().lower())


def _decompressed(body: bytes, encoding: str) -> bytes:
    """A gzip or deflate body, inflated within the same limit as a plain one."""
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise OIPError(f"Content-Encoding {encoding[:32]!r} is not accepted; send gzip, deflate or none", 415)
    inflate = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib headers, told apart by the data
    try:
        out = inflate.decompress(body, MAX_OIP_BYTES + 1)
    except zlib.error as exc:
        raise OIPError(f"the {encoding} body cannot be inflated: {exc}") from None
    if len(out) > MAX_OIP_BYTES or inflate.unconsumed_tail:
        raise OIPError(f"the inflated body exceeds {MAX_OIP_BYTES} bytes", 413)
    return out


LOOP_BYTES = 256 * 1024  # bodies up to this size parse on the event loop (well under a millisecond)
MAX_DIM = 2**31  # no OIP dimension is larger; past it numpy's int64 products overflow


def _shape_ok(shape: Any) -> bool:
    return isinstance(shape, list) and all(type(d) is int and 0 <= d <= MAX_DIM for d in shape) and len(shape) <= 8


def _check_request(doc: dict[str, Any]) -> None:
    """The request's structure, field by field, before any of it is used: a wrong JSON type
    anywhere is a 400 that names the field, never an exception from deeper down."""
    if "parameters" in doc and not isinstance(doc["parameters"], dict):
        raise OIPError('"parameters" must be a JSON object')
    outputs = doc.get("outputs", [])
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise OIPError('"outputs" must be a list of objects, each with a string "name"')
    for o in outputs:
        if "parameters" in o and not isinstance(o["parameters"], dict):
            raise OIPError(f'output {o["name"]!r}: "parameters" must be a JSON object')
    for i, t in enumerate(doc["inputs"]):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("datatype"), str):
            raise OIPError(f"input {i}: needs a string name and datatype, an integer shape and data")
        if not _shape_ok(t.get("shape")):
            raise OIPError(f"input {t['name']!r}: shape must be a list of at most 8 whole numbers 0..{MAX_DIM}")
        params = t.get("parameters", {})
        if not isinstance(params, dict):
            raise OIPError(f'input {t["name"]!r}: "parameters" must be a JSON object')
        size = params.get("binary_data_size")
        if size is not None and not (type(size) is int and 0 <= size <= MAX_OIP_BYTES):
            raise OIPError(f"input {t['name']!r}: binary_data_size must be a whole number of bytes 0..{MAX_OIP_BYTES}")
    if any("classification" in (o.get("parameters") or {}) for o in outputs):
        raise OIPError("the classification extension (class_count) is not served: ask for the probabilities and label outputs")
    if len({t["name"] for t in doc["inputs"]}) != len(doc["inputs"]):
        raise OIPError("each input name may appear once")


def _parse(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise OIPError(f"{HEADER_LENGTH} {header_length!r} does not fit a body of {len(body)} bytes")
        head, binary = body[: int(header_length)], body[int(header_length) :]
    else:
        head, binary = body, b""
    try:
        doc = json.loads(head, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OIPError(f"request is not valid JSON: {exc}") from None
    except RecursionError:
        raise OIPError("request JSON is nested too deep") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise OIPError('request must be a JSON object with an "inputs" list')
    _check_request(doc)
    return doc, binary


def _no_constant(name: str) -> Any:
    raise OIPError(f"request JSON holds {name}, which is not JSON; send numbers")


def _decode_inputs(doc: dict[str, Any], binary: bytes) -> dict[str, np.ndarray]:
    arrays, offset = {}, 0
    for tensor in doc["inputs"]:
        if not isinstance(tensor, dict) or "name" not in tensor:
            raise OIPError("each input needs a name, datatype, shape and data")
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        raw = None
        if size is not None:
            raw = binary[offset : offset + int(size)]
            if len(raw) != int(size):
                raise OIPError(f"input {tensor['name']}: binary_data_size {size} runs past the body")
            offset += int(size)
        try:
            arrays[tensor["name"]] = tensors.from_json(tensor, raw)
        except tensors.TensorError as exc:
            raise OIPError(str(exc)) from None
        except (ValueError, TypeError, OverflowError, MemoryError, RecursionError) as exc:  # ragged or absurd data
            raise OIPError(f"input {tensor['name']!r}: data does not fit its shape and datatype ({type(exc).__name__})") from None
    return arrays


def _wants_binary(doc: dict[str, Any], name: str) -> bool:
    for out in doc.get("outputs") or []:
        if out.get("name") == name and "binary_data" in (out.get("parameters") or {}):
            return bool(out["parameters"]["binary_data"])
    return bool((doc.get("parameters") or {}).get("binary_data_output", False))


@_answers_errors
async def infer(request: Request) -> Response:
    model = _model(request)
    body = await _read_body(request)
    watch_for_disconnect(request.receive)
    # A large body (up to MAX_OIP_BYTES) is parsed in a thread: the event loop keeps answering.
    header_length = request.headers.get(HEADER_LENGTH)
    if len(body) > LOOP_BYTES:
        doc, binary = await asyncio.to_thread(_parse, body, header_length)
        inputs = await asyncio.to_thread(_decode_inputs, doc, binary)
    else:
        doc, binary = _parse(body, header_length)
        inputs = _decode_inputs(doc, binary)
    wanted = [o.get("name") for o in doc.get("outputs") or []] or None
    asked = request.path_params.get("version")
    # a version in the path asks for it (as x-tiffin-version does); else a split's sticky key applies
    traffic.ROUTE.set({**dict(request.scope["headers"]), **({traffic.HEADER: asked.encode()} if asked else {})})
    outputs, version = await model.infer(inputs, wanted)
    result: dict[str, Any] = {"model_name": model.name, "model_version": version, "outputs": []}
    if "id" in doc:
        result["id"] = doc["id"]
    blobs = []
    for name, array in outputs.items():
        if _wants_binary(doc, name):
            raw = tensors.to_raw(array)
            blobs.append(raw)
            result["outputs"].append(
                {
                    "name": name,
                    "datatype": tensors.datatype_of(array),
                    "shape": list(array.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            )
        else:
            result["outputs"].append(tensors.to_json(name, array))
    head = json.dumps(result).encode()
    # as the typed routes say: which version answered, and whether the response cache did
    said = {traffic.HEADER.decode(): version, **({cache.HEADER.decode(): hit} if (hit := cache.OUTCOME.get()) else {})}
    if not blobs:
        return Response(head, media_type="application/json", headers=said)
    return Response(
        head + b"".join(blobs),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head)), **said},
    )


def build_app() -> Starlette:
    routes = [
        Route("/", server_metadata, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
    ]
    for prefix in ("/models/{name}", "/models/{name}/versions/{version}"):
        routes += [
            Route(prefix, model_metadata, methods=["GET"]),
            Route(prefix + "/ready", model_ready, methods=["GET"]),
            Route(prefix + "/config", model_config, methods=["GET"]),
            Route(prefix + "/infer", infer, methods=["POST"]),
        ]
    return Starlette(routes=routes, exception_handlers={404: _not_served, 405: _not_served})


async def _not_served(request: Request, exc: Exception) -> Response:
    """JSON, as every OIP answer (tritonclient cannot read Starlette's plain-text 404)."""
    status = getattr(exc, "status_code", 404)
    what = "no such route under /v2" if status == 404 else f"{request.method} is not served here"
    return JSONResponse({"error": f"{what}: {request.url.path}"}, status_code=status)


class V2Root:
    """Serve `GET /v2` itself: a mounted app only sees `/v2/...`, and Starlette would
    answer `/v2` with a redirect that clients such as tritonclient do not follow."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") == "/v2":
            scope = {**scope, "path": "/v2/", "raw_path": b"/v2/"}
        await self.app(scope, receive, send)
