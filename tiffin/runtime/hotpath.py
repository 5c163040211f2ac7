"""The image hot path: lean request handling in the image runner's process, on a port of its own.

BentoML's request path costs ~1.7 ms of event-loop CPU per request here (its middlewares
wrap every route; docs/decisions/005-hot-path-listener.md). Here a request is: read the body,
check it, queue the pixels on the model's in-process backend (the batcher it shares with the
typed route and the OIP), write the JSON answer. Input checks and error answers match the
typed API's; metrics are counted once per batch on the model thread (tiffin/runtime/metrics.py).

It is served twice: as an ASGI app mounted at `/fast` on BentoML's own port (one port,
e.g. on BentoCloud), and by `http1.Listener` on a port of its own (`TIFFIN_FAST_PORT`,
default 3002), where no BentoML middleware and no ASGI layer runs. That second port is the
fast one (see `make bench`).

    POST .../classify   body: the model's input as raw uint8 bytes (application/
                        octet-stream; 784 for the 28x28 Fashion-MNIST CNN), or for 28x28
                        grey models a PNG/JPEG file (image/png, image/jpeg)
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np

from tiffin.runtime import uploads
from tiffin.runtime.asgi import BodyError, content_type, media_of, read_body
from tiffin.runtime.backends import InProcess
from tiffin.runtime.batcher import Overloaded
from tiffin.runtime.http1 import Reply, Request
from tiffin.wire import images
from tiffin.wire.limits import MAX_IMAGE_BYTES as MAX_BODY

log = logging.getLogger("tiffin")


class HotPath:
    """The hot path's request handling, served by `http1.Listener` on its own port and, as an
    ASGI app, mounted on BentoML's port: one definition of the input rules and answers."""

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
