"""The front door: the outermost ASGI layer of a BentoML service, on BentoML's own port.

It answers the typed POST routes (`/classify_image`, `/classify_text`, `/predict_demand`)
and the OIP REST routes (`/v2/...`) itself and hands every other request (docs page,
OpenAPI, /livez, /readyz, /metrics, the playground) to the app BentoML built. BentoML's
middlewares for metrics, tracing, access log, timeout and concurrency wrap every route of
that app, mounted apps and middlewares of our own included: a constant answer served from
inside them reached 1,340-1,650 req/s at 64 clients here, from outside them 16,200 (bare
uvicorn 17,900; docs/decisions/009-front-door.md). What replaces them for these routes: the
schemas' checks (the same pydantic models the OpenAPI page documents), size and content-type
limits, per-model Prometheus series counted per batch (tiffin/runtime/metrics.py), the
batcher's bounded queue and deadline (503 + Retry-After).

`bentoml.SyncHTTPClient`, the docs page's "Try it out" and curl call the same paths and get
the same answers either way; TIFFIN_FRONT_DOOR=off sends them through BentoML's routes.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header

from tiffin.api import keys
from tiffin.api.endpoints import BadInput, Endpoints
from tiffin.config import settings
from tiffin.runtime import cache, loop_lag, payload_log
from tiffin.runtime.asgi import GONE, BodyError, Receive, Send, media_type, read_body, send_json, watch_for_disconnect
from tiffin.runtime.batcher import ClientGone, Overloaded
from tiffin.runtime.remote import RunnerFailed
from tiffin.versions import traffic
from tiffin.wire.schemas import BatchJob, DemandFeatures, TextRequest

log = logging.getLogger("tiffin")


def describe(exc: ValidationError) -> str:
    """pydantic's errors, one line: "hr: Input should be less than or equal to 23"."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def parse_json(schema: type[BaseModel], body: bytes) -> BaseModel:
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        raise BadInput(describe(exc)) from None


# a Content-Disposition's plain name="..." parameter (not filename="...")
_PLAIN_NAME = re.compile(rb'(?:^|;)\s*name="([^"\\]*)"', re.IGNORECASE)
_PLAIN_BOUNDARY = re.compile(rb"^multipart/form-data;\s*boundary=([0-9A-Za-z\'()+_,./:=?-]{1,70})$", re.IGNORECASE)


def form_parts(content_type: bytes, body: bytes) -> dict[str, bytes]:
    """A multipart/form-data body -> {field name: its bytes}. The shape HTTP clients send
    (httpx, requests, curl, browsers, BentoML's client) is split in one pass; anything else
    (quoted boundaries, preambles, escaped names, bare LF, malformed bodies) goes to
    python-multipart's parser. Figures: docs/decisions/009-front-door.md."""
    plain = _PLAIN_BOUNDARY.match(content_type.strip())
    if plain is not None:
        parts = _plain_parts(plain.group(1), body)
        if parts is not None:
            return parts
    return _parsed_parts(content_type, body)


def _plain_parts(boundary: bytes, body: bytes) -> dict[str, bytes] | None:
    """RFC 7578's form in its common spelling: "--B" CRLF headers CRLF CRLF data, CRLF "--B"
    before each next part and "--B--" at the end; None for anything else."""
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        return None
    *sections, last = body[len(delimiter) :].split(b"\r\n" + delimiter)
    if not sections or not last.startswith(b"--"):
        return None
    parts: dict[str, bytes] = {}
    for section in sections:
        head, sep, data = section.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"\r\n"):
            return None
        name = None
        for line in head[2:].split(b"\r\n"):
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-disposition":
                found = _PLAIN_NAME.search(value)
                name = found.group(1).decode("utf-8", "replace") if found else None
        if name is None:
            return None
        parts[name] = data
    return parts


def _parsed_parts(content_type: bytes, body: bytes) -> dict[str, bytes]:
    """python-multipart's parser (Starlette's), for every body `_plain_parts` leaves."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadInput("the multipart body has no boundary in its Content-Type")
    parts: dict[str, bytes] = {}
    headers: list[list[bytes]] = []
    data: list[bytes] = []

    def part_begin() -> None:
        headers.clear()
        data.clear()

    def part_end() -> None:
        disposition = next((v for k, v in headers if k.lower() == b"content-disposition"), b"")
        _, params = parse_options_header(disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        parts[name] = b"".join(data)

    def header_field(buf: bytes, start: int, end: int) -> None:
        headers.append([buf[start:end], b""])

    def header_value(buf: bytes, start: int, end: int) -> None:
        headers[-1][1] += buf[start:end]

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": part_begin,
            "on_part_data": lambda buf, start, end: data.append(buf[start:end]),
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_part_end": part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several types for a malformed body
        raise BadInput(f"the multipart body could not be parsed: {exc}") from None
    return parts


def only_field(parts: dict[str, bytes], name: str) -> bytes:
    if set(parts) - {name}:
        raise BadInput(f"unexpected form field(s) {', '.join(sorted(set(parts) - {name}))}; send only: {name}")
    if name not in parts:
        raise BadInput(f"missing form field(s) {name}; send: {name}")
    return parts[name]


# (endpoints, Content-Type, body) -> (the answer, the input as the payload log keeps it)
Handler = Callable[[Endpoints, bytes, bytes], Awaitable[tuple[dict, bytes]]]


async def _image(endpoints: Endpoints, content_type: bytes, body: bytes) -> tuple[dict, bytes]:
    image = only_field(form_parts(content_type, body), "image")
    return await endpoints.classify_image(image), image


async def _text(endpoints: Endpoints, content_type: bytes, body: bytes) -> tuple[dict, bytes]:
    request = parse_json(TextRequest, body)
    return await endpoints.classify_text(request.text, request.tier), body


async def _demand(endpoints: Endpoints, content_type: bytes, body: bytes) -> tuple[dict, bytes]:
    return await endpoints.predict_demand(parse_json(DemandFeatures, body).model_dump()), body


# path -> (the media type it takes, its body limit's setting, its handler, the backends it
# needs, any one of them)
ROUTES: dict[str, tuple[str, str, Handler, tuple[str, ...]]] = {
    "/classify_image": ("multipart/form-data", "max_image_bytes", _image, ("image",)),
    "/classify_text": ("application/json", "max_json_bytes", _text, ("text_small", "text_large")),
    "/predict_demand": ("application/json", "max_json_bytes", _demand, ("demand",)),
}


class FrontDoor:
    """Wraps the app BentoML built for one service. Until the service instance attaches its
    endpoints (its models loaded), every request goes to BentoML's app."""

    def __init__(self, app: Callable, apps: dict[str, Callable] | None = None, keyring: keys.Keyring | None = None):
        """`apps`: ASGI apps of our own, by path prefix ("/v2"), also served outside BentoML's
        middlewares (mount them on the service too, for the front door off). `keyring`: the
        API keys every request but the open ones must carry (None: open), checked here on
        every route, the front door on or off."""
        self.app, self.keyring = app, keyring
        self.apps = [(prefix + "/", prefix, sub) for prefix, sub in (apps or {}).items()]
        self.endpoints: Endpoints | None = None
        config = settings()
        self.limits = {path: getattr(config, limit) for path, (_, limit, _, _) in ROUTES.items()}
        self.enabled = config.front_door
        self.payload_log = payload_log.PayloadLog.from_settings()

    def routes(self, endpoints: Endpoints) -> dict[str, tuple[str, int, Handler]]:
        return {
            path: (media, self.limits[path], handler)
            for path, (media, _, handler, needs) in ROUTES.items()
            if any(getattr(endpoints, n) is not None for n in needs)
        }

    def attach(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self._routes = self.routes(endpoints)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":  # the worker's loop is running: watch how long it is held
                loop_lag.start()
            return await self.app(scope, receive, send)
        refusal = _request_line_problem(scope)
        if refusal is not None:
            return await send_json(send, *refusal)
        path = scope["path"]
        needed = scope_of(path) if self.keyring is not None else None
        if needed is not None:
            decision = self.keyring.check(keys.presented(dict(scope["headers"])), needed)
            if not decision.allowed:
                return await _refuse(send, decision)
            if needed == "admin":  # who moved an alias goes into its history
                scope = {**scope, keys.KEY_SCOPE: decision.key}
        if path == "/docs.json" and scope["method"] == "GET":
            return await self._docs(scope, receive, send)
        if self.enabled and path in TASK_INPUTS and scope["method"] == "POST":
            return await self._checked_submit(scope, receive, send, path, TASK_INPUTS[path])
        if self.enabled and self.endpoints is not None:
            route = self._routes.get(path)
            if route is not None and scope["method"] == "POST":
                return await self._typed(scope, receive, send, path, *route)
            for under, prefix, sub in self.apps:
                if path.startswith(under):
                    return await sub({**scope, "root_path": scope.get("root_path", "") + prefix}, receive, send)
        await self.app(scope, receive, send)

    async def _checked_submit(self, scope, receive: Receive, send: Send, path: str, model: type[BaseModel]) -> None:
        """A task's submission, checked before BentoML queues it: BentoML answers 200 with a
        task id for any body and only the task then fails, so a caller learns of a wrong
        field later, if ever. The body goes on to BentoML unchanged."""
        wrong = _wrong_media(path, "application/json", media_type(scope))
        if wrong is not None:
            return await send_json(send, 415, wrong)
        try:
            data = await read_body(scope, receive, TASK_BODY_LIMIT)
        except BodyError as exc:
            return await send_json(send, exc.status, {"error": str(exc)})
        if data is None:
            return
        try:
            model.model_validate_json(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            return await send_json(send, 400, {"error": f"{path}: {problems}"})
        given = False

        async def replay() -> dict[str, Any]:
            nonlocal given
            if given:
                return await receive()
            given = True
            return {"type": "http.request", "body": data, "more_body": False}

        await self.app(scope, replay, send)

    async def _docs(self, scope, receive: Receive, send: Send) -> None:
        """BentoML's OpenAPI document, told the whole truth about the typed routes: their body
        is required, and every status they answer is listed with its error schema."""
        start, chunks = {}, []

        async def keep(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(openapi_truth(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _typed(self, scope, receive: Receive, send: Send, path: str, media: str, limit: int, handler: Handler) -> None:
        headers: list[tuple[bytes, bytes]] = []
        wrong = _wrong_media(path, media, media_type(scope))
        if wrong is not None:
            status, body = 415, wrong
        else:
            try:
                data = await read_body(scope, receive, limit)
                if data is None:
                    return  # the client went away
                watch_for_disconnect(receive)
                headers_in = dict(scope["headers"])
                traffic.ROUTE.set(headers_in)  # this request's task only: a split's sticky key, x-tiffin-version
                started = time.perf_counter()
                answer, logged = await handler(self.endpoints, headers_in.get(b"content-type", b""), data)
                status, body = 200, answer
                headers.append((traffic.HEADER, answer["model"].rpartition(":")[2].encode()))
                if (outcome := cache.OUTCOME.get()) is not None:
                    headers.append((cache.HEADER, outcome.encode()))
                if self.payload_log is not None:
                    request_id = headers_in.get(b"x-request-id", b"").decode("latin-1")[:128] or None
                    self.payload_log.record(path, logged, answer, time.perf_counter() - started, request_id)
            except BodyError as exc:
                status, body = exc.status, {"error": str(exc)}
            except BadInput as exc:
                status, body = exc.status, {"error": str(exc)}
            except traffic.NotServed as exc:
                status, body = 400, {"error": str(exc)}
            except Overloaded as exc:
                status, body = 503, {"error": str(exc)}
                headers = [(b"retry-after", str(int(exc.retry_after)).encode())]
            except ClientGone as exc:
                status, body = GONE, {"error": str(exc)}
            except RunnerFailed as exc:  # the gateway's runner, not this process, failed
                log.warning("%s: %s", path, exc)
                status, body = 502, {"error": str(exc)}
            except Exception as exc:  # the model failed on this batch: say so once, the worker lives on
                log.exception("%s failed", path)
                status, body = 500, {"error": f"the model failed on this request ({type(exc).__name__}); try again"}
        await send_json(send, status, body, tuple(headers))


def _wrong_media(path: str, wanted: str, sent: str) -> dict | None:
    """The 415 answer's body where a route was sent another media type than it takes."""
    return None if sent == wanted else {"error": f"{path} takes {wanted}, got {sent or 'no Content-Type'}"}


# Open to anyone: the probes platforms call, and the static pages (docs, playground), which
# hold no model; the playground's calls to the API carry the key the user gives it.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/v2/health/live", "/v2/health/ready", "/", "/docs.json"})
OPEN_PREFIXES = ("/static_content/", "/playground")


def scope_of(path: str) -> str | None:
    """The scope a request to `path` needs; None: open."""
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return None
    if path == "/metrics":
        return "metrics"
    if path.startswith("/admin"):
        return "admin"
    return "infer"


MAX_URL_BYTES = 8 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024


def _request_line_problem(scope: dict[str, Any]) -> tuple[int, dict] | None:
    """414 for a URL, 431 for headers, past what any client of ours sends (uvicorn itself
    takes whatever arrives; these keep the work per request small from here on)."""
    url = len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b""))
    if url > MAX_URL_BYTES:
        return 414, {"error": f"the URL is {url} bytes; at most {MAX_URL_BYTES} are accepted"}
    headers = scope.get("headers", [])
    size = sum(len(k) + len(v) for k, v in headers)
    if len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
        return 431, {"error": f"{len(headers)} headers of {size} bytes; at most {MAX_HEADERS} headers, {MAX_HEADER_BYTES} bytes"}
    return None


async def _refuse(send: Send, decision: keys.Decision) -> None:
    """RFC 6750's answers (401 with WWW-Authenticate, 403 insufficient_scope), or 429 with
    Retry-After and the RateLimit fields (IETF httpapi-ratelimit-headers)."""
    headers = []
    if decision.status == 401:
        error = ', error="invalid_token"' if "not valid" in decision.message else ""
        headers.append((b"www-authenticate", f'Bearer realm="tiffin"{error}'.encode()))
    elif decision.status == 403:
        headers.append(
            (b"www-authenticate", f'Bearer realm="tiffin", error="insufficient_scope", scope="{decision.scope}"'.encode())
        )
    else:
        wait = str(max(1, round(decision.retry_after + 0.5))).encode()
        headers += [
            (b"retry-after", wait),
            (b"ratelimit-limit", str(int(decision.limit)).encode()),
            (b"ratelimit-remaining", b"0"),
            (b"ratelimit-reset", wait),
        ]
    await send_json(send, decision.status, {"error": decision.message}, tuple(headers))


ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
ANSWERED = {
    "400": "the input is not valid: the message names the field",
    "401": "an API key is needed (when keys are set) or is not valid",
    "403": "the API key lacks the scope",
    "413": "the body is over the route's limit",
    "415": "the body is not of the content type the route takes",
    "429": "the key's quota is used up: see Retry-After",
    "431": "too many or too large headers",
    "503": "the model's queue is full or would not reach the request in time: see Retry-After",
}


# BentoML tasks' bodies checked against their model before BentoML sees them: a submission
# is queued with any body, and BentoML's own refusal of the task route's body does not match
# its document (a list as `detail`, documented a string)
TASK_INPUTS: dict[str, type[BaseModel]] = {"/batch": BatchJob, "/batch/submit": BatchJob}
TASK_BODY_LIMIT = 16 * 1024


# What BentoML's task submit and retry answer: its document names TaskStatusResponse, whose
# created_at and executed_at only the status route sends.
TASK_QUEUED = {
    "type": "object",
    "required": ["task_id", "status"],
    "properties": {"task_id": {"type": "string"}, "status": {"type": "string"}},
}


def _error_answer(status: str) -> dict:
    return {"description": ANSWERED[status], "content": {"application/json": {"schema": ERROR_SCHEMA}}}


def openapi_truth(spec: dict) -> dict:
    paths = spec.get("paths", {})
    for path in TASK_INPUTS:
        operation = paths.get(path, {}).get("post")
        if operation is not None:
            operation.get("requestBody", {})["required"] = True
            operation.setdefault("responses", {}).update({s: _error_answer(s) for s in ("413", "415")})
    task_status = spec.get("components", {}).get("schemas", {}).get("TaskStatusResponse", {}).get("properties", {}).get("status")
    if task_status is not None:  # the statuses BentoML 1.4.39 sends, not the four it documents
        from _bentoml_impl.tasks.result import ResultStatus

        task_status["enum"] = [s.value for s in ResultStatus]
    for path, item in paths.items():
        if path.endswith(("/submit", "/retry")) and "x-bentoml-name" in item.get("post", {}):
            item["post"]["responses"]["200"] = {"description": "queued", "content": {"application/json": {"schema": TASK_QUEUED}}}
    for path in ROUTES:
        operation = paths.get(path, {}).get("post")
        if operation is None:
            continue
        if "requestBody" in operation:
            operation["requestBody"]["required"] = True
        operation.setdefault("responses", {}).update({status: _error_answer(status) for status in ANSWERED})
    return spec


class _Installed:
    """This process's front door, made when BentoML builds the app of the service this worker
    serves (one per worker process), and the endpoints its service instance attaches once its
    models are loaded (BentoML makes the instance after the app)."""

    def __init__(self) -> None:
        self.door: FrontDoor | None = None
        self.endpoints: Endpoints | None = None

    def built(self, door: FrontDoor) -> FrontDoor:
        self.door = door
        if self.endpoints is not None:
            door.attach(self.endpoints)
        return door

    def attach(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        if self.door is not None:
            self.door.attach(endpoints)


_THIS = _Installed()


def install(service: Any, apps: dict[str, Callable] | None = None) -> None:
    """Put a `FrontDoor` outside every middleware of `service` (a `@bentoml.service`): BentoML
    builds a service's app in `Service.to_asgi`, so the service object's class becomes a
    subclass of BentoML's `Service` whose `to_asgi` wraps that app."""
    from tiffin.runtime import http_limits

    http_limits.install()  # the deadlines and connection cap of the uvicorn BentoML starts
    base = type(service)

    class Fronted(base):
        __slots__ = ()

        def to_asgi(self, is_main: bool = True):
            return _THIS.built(FrontDoor(super().to_asgi(is_main), apps, keys.keyring()))

    Fronted.__name__ = Fronted.__qualname__ = base.__name__
    service.__class__ = Fronted


def attach(endpoints: Endpoints) -> None:
    """Called by the service instance: the front door of this worker answers with `endpoints`."""
    _THIS.attach(endpoints)


async def typed(pending: Awaitable[dict], result: type[BaseModel]) -> Any:
    """For BentoML's own route (the front door off, or bypassed): the endpoint's answer as
    `result`, or the front door's error answer for the same problem."""
    from starlette.responses import JSONResponse

    try:
        return result(**await pending)
    except BadInput as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    except traffic.NotServed as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except Overloaded as exc:
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": str(int(exc.retry_after))})
    except RunnerFailed as exc:
        return JSONResponse({"error": str(exc)}, status_code=502)
