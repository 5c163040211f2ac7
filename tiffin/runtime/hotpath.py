"""The image hot path: lean request handling in the image runner's process, on a port of its own.

BentoML's request path costs ~1.7 ms of event-loop CPU per request here (its middlewares
wrap every route; docs/decisions/005-hot-path-listener.md). Here a request is: read the body,
check it, queue the pixels on the in-process `Batcher`, write a JSON answer made on the model
thread. Input checks and error answers match the typed API's; metrics are counted once per
batch on the model thread, not per request on the event loop.

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
from collections.abc import Callable

import numpy as np

from tiffin.runtime import uploads
from tiffin.runtime.asgi import BodyError, content_type, media_of, read_body
from tiffin.runtime.batcher import Batcher, Overloaded
from tiffin.runtime.http1 import Reply, Request
from tiffin.wire import images
from tiffin.wire.limits import MAX_IMAGE_BYTES as MAX_BODY

log = logging.getLogger("tiffin")


class Metrics:
    """Prometheus series for the hot path, on BentoML's /metrics beside its own. Created in
    the worker (after BentoML has set up multi-process collection), once per process."""

    _made: Metrics | None = None

    def __init__(self) -> None:
        import prometheus_client as prom

        self.answered = prom.Counter("tiffin_hot_path_requests", "hot-path requests by outcome", ["outcome"])
        self.batch_size = prom.Histogram(
            "tiffin_hot_path_batch_size", "requests per model batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
        )
        self.batch_seconds = prom.Histogram(
            "tiffin_hot_path_batch_seconds",
            "model time per batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.queue_seconds = prom.Histogram(
            "tiffin_hot_path_queue_wait_seconds",
            "queue wait of the oldest request in each batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._ok = self.answered.labels("ok")  # looked up once: on_batch runs for every batch

    @classmethod
    def get(cls) -> Metrics:
        if cls._made is None:
            cls._made = cls()
        return cls._made

    def on_batch(self, size: int, seconds: float, oldest_wait: float) -> None:
        self._ok.inc(size)
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.queue_seconds.observe(oldest_wait)


class HotPath:
    """The hot path's request handling, served by `http1.Listener` on its own port and, as an
    ASGI app, mounted on BentoML's port: one definition of the input rules and answers."""

    def __init__(self) -> None:
        self.batcher: Batcher | None = None
        self.metrics: Metrics | None = None
        self.tag = ""
        self.classes: list[str] = []
        self._set_shape((images.SIDE, images.SIDE))

    def attach(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        tag: str,
        classes: list[str],
        shape: tuple[int, ...],
        metrics: Metrics | None = None,
        **batching,
    ) -> None:
        """Serve `predict` (a batch of uint8 inputs -> class probabilities) through a `Batcher`
        made with `batching` (its keyword options)."""
        self.tag, self.classes, self.metrics = tag, classes, metrics
        self._set_shape(tuple(shape))
        # One answer's JSON, to fill per item: labels and tag escaped once, "%" doubled.
        quoted = [json.dumps(c).replace("%", "%%") for c in classes]
        self._labels = [json.dumps(c) for c in classes]
        self._template = (
            '{"label": %s, "probabilities": {'
            + ", ".join(f"{q}: %.9g" for q in quoted)
            + '}, "model": '
            + json.dumps(tag).replace("%", "%%")
            + ', "batch_size": %d}'
        )
        self.batcher = Batcher(
            lambda pixels: self.answers(predict(pixels)),
            collate=self._collate,
            on_batch=metrics.on_batch if metrics is not None else None,
            **batching,
        )

    def _collate(self, items: list[bytes]) -> np.ndarray:
        """Queued inputs (each the model's raw uint8 bytes) -> one (N, *shape) batch in one C
        join (a third of np.stack's cost per item; docs/decisions/005-hot-path-listener.md)."""
        return np.frombuffer(bytearray().join(items), dtype=np.uint8).reshape(len(items), *self.shape)

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        # worked out once here, not on every request
        self.shape, self.raw_bytes, self.shown = shape, math.prod(shape), "x".join(map(str, shape))
        self.grey28 = shape == (images.SIDE, images.SIDE)

    def answers(self, probs: np.ndarray) -> list[bytes]:
        """A batch's (N, classes) probabilities -> each item's JSON answer, made on the model
        thread, once per batch: the event loop only writes them out. %.9g prints a float32
        exactly (it has at most 9 significant digits) at a third of the cost of repr.
        Large label sets (the 1000-class benchmark model) answer their top 5, not every class."""
        n = len(probs)
        if probs.shape[1] <= 10 and np.isfinite(probs).all():
            return [
                (self._template % (self._labels[best], *row, n)).encode()
                for best, row in zip(probs.argmax(axis=1).tolist(), probs.tolist())
            ]
        shown = np.argsort(probs, axis=1)[:, ::-1][:, :5] if probs.shape[1] > 10 else [range(probs.shape[1])] * n
        return [
            json.dumps(
                {
                    "label": self.classes[int(np.argmax(row))],
                    "probabilities": {self.classes[i]: float(row[i]) for i in top},
                    "model": self.tag,
                    "batch_size": n,
                }
            ).encode()
            for row, top in zip(probs, shown)
        ]

    def refuse(self, status: int, message: str, headers: tuple = ()) -> Reply:
        if self.metrics is not None:
            self.metrics.answered.labels({503: "busy", 500: "error"}.get(status, "bad_request")).inc()
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
            pixels = body
        elif media in ("image/png", "image/jpeg") and grey28:
            try:
                pixels = (await uploads.decode(body)).tobytes()
            except images.InvalidImage as exc:
                return self.refuse(400, str(exc))
        else:
            accepted = "or image/png or image/jpeg" if grey28 else "(this model takes raw tensors only)"
            return self.refuse(
                415, f"send application/octet-stream (raw {shown} uint8) {accepted}, not {media or 'no Content-Type'}"
            )
        if self.batcher is None:
            return self.refuse(503, "the model is still loading", ((b"retry-after", b"1"),))
        try:
            answer, _ = await self.batcher.submit(pixels)
        except Overloaded as exc:
            return self.refuse(503, str(exc), ((b"retry-after", str(int(exc.retry_after)).encode()),))
        except Exception as exc:  # the model failed on this batch: say so, the worker lives on
            log.exception("hot path batch failed")
            return self.refuse(500, f"the model failed on this batch ({type(exc).__name__}); try again")
        return Reply(200, answer)

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
