"""The image hot path: `POST /fast/classify` with a body of the model's raw input bytes or a
small PNG/JPEG, no multipart and no schema layer: read the body, check it, queue the pixels
on the model's in-process backend (the batcher it shares with the typed route and the OIP),
write the JSON answer. Input checks and error answers match the typed API's; metrics are
counted once per batch on the model thread (tiffin/runtime/metrics.py). The front door
(tiffin/api/frontdoor.py) serves it on BentoML's port, outside BentoML's middlewares.

Until 2026-12 it also had an HTTP/1.1 listener of our own on a second port (3002): measured
against uvicorn on the same app it won 13-15 % on raw bytes and nothing on PNGs, and failed
abuse cases uvicorn passes, so it was retired (docs/decisions/009-front-door.md).

    POST /fast/classify   body: the model's input as raw uint8 bytes (application/
                          octet-stream; 784 for the 28x28 Fashion-MNIST CNN), or for 28x28
                          grey models a PNG/JPEG file (image/png, image/jpeg)
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

import numpy as np

from tiffin.runtime import uploads
from tiffin.runtime.asgi import GONE, BodyError, content_type, media_of, read_body, watch_for_disconnect
from tiffin.runtime.backends import InProcess
from tiffin.runtime.batcher import ClientGone, Overloaded
from tiffin.wire import images
from tiffin.wire.limits import MAX_IMAGE_BYTES as MAX_BODY

log = logging.getLogger("tiffin")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    content_type: bytes  # as sent, b"" when absent
    body: bytes


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes = b"application/json"


class HotPath:
    """The hot path's request handling, as an ASGI app."""

    def __init__(self) -> None:
        self.backend: InProcess | None = None
        self._set_shape((images.SIDE, images.SIDE))

    def attach(self, backend: InProcess) -> None:
        """Serve `backend` (an image classifier in this process): the hot path queues on its
        batcher, beside the typed route and the OIP, so all three share batches."""
        self.backend = backend
        self._set_shape(tuple(backend.predictor.input_shape))

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        # worked out once here, not on every request
        self.shape, self.raw_bytes, self.shown = shape, math.prod(shape), "x".join(map(str, shape))
        self.grey28 = shape == (images.SIDE, images.SIDE)

    def refuse(self, status: int, message: str, headers: tuple = ()) -> Reply:
        if self.backend is not None:
            self.backend.refused({503: "busy", 500: "error"}.get(status, "bad_request"))
        return Reply(status, json.dumps({"error": message}).encode(), headers)

    async def handle(self, request: Request) -> Reply:
        if not request.path.endswith("/classify"):
            return Reply(404, b'{"error": "the hot path serves POST .../classify"}')
        if request.method != "POST":
            return Reply(405, b'{"error": "use POST"}')
        media = media_of(request.content_type)
        body, grey28, shown = request.body, self.grey28, self.shown
        if media == "application/octet-stream":
            if len(body) != self.raw_bytes:
                return self.refuse(400, f"raw pixels must be {self.raw_bytes} bytes ({shown} uint8), got {len(body)}")
            pixels = np.frombuffer(body, dtype=np.uint8).reshape(self.shape)
        elif media in ("image/png", "image/jpeg") and grey28:
            try:
                pixels = await uploads.decode(body)
            except images.InvalidImage as exc:
                return self.refuse(400, str(exc))
        else:
            accepted = "or image/png or image/jpeg" if grey28 else "(this model takes raw tensors only)"
            return self.refuse(
                415, f"send application/octet-stream (raw {shown} uint8) {accepted}, not {media or 'no Content-Type'}"
            )
        if self.backend is None:
            return self.refuse(503, "the model is still loading", ((b"retry-after", b"1"),))
        try:
            [answer] = await self.backend.predict([pixels])
        except Overloaded as exc:
            return self.refuse(503, str(exc), ((b"retry-after", str(int(exc.retry_after)).encode()),))
        except ClientGone as exc:  # counted where the batcher dropped it; nobody reads this
            return Reply(GONE, json.dumps({"error": str(exc)}).encode())
        except Exception as exc:  # the model failed on this batch: say so, the worker lives on
            log.exception("hot path batch failed")
            return self.refuse(500, f"the model failed on this batch ({type(exc).__name__}); try again")
        probs = answer["probabilities"]
        label = max(probs, key=probs.__getitem__)
        return Reply(200, json.dumps({"label": label, **answer}).encode())

    async def __call__(self, scope, receive, send) -> None:
        """The same handling as an ASGI app, for the route mounted on BentoML's port."""
        if scope["type"] != "http":
            return
        try:
            body = await read_body(scope, receive, MAX_BODY)
        except BodyError as exc:
            reply = self.refuse(exc.status, str(exc))
        else:
            if body is None:
                return
            watch_for_disconnect(receive)
            reply = await self.handle(Request(scope["method"], scope["path"], content_type(scope), body))
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type),
                    (b"content-length", str(len(reply.body)).encode()),
                    *reply.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})
