"""The image hot path: a bare ASGI app in the image runner's process, with its own listener.

BentoML's request path costs ~1.7 ms of event-loop CPU per request on our machine (IO
descriptors, pydantic, and middlewares for metrics, tracing, access log and concurrency
that wrap every route, mounted apps included). Here a request is: read the body, check
it, queue the pixels on the in-process `Batcher`, write a small JSON answer. Input checks
and error answers match the typed API's; metrics are counted once per batch on the model
thread, not per request on the event loop.

The app is served twice: mounted at `/fast` on BentoML's own port (one port, e.g. on
BentoCloud), and by `Listener` on a port of its own (`TIFFIN_FAST_PORT`, default 3002),
where no BentoML middleware runs: uvicorn on the worker's event loop, in the same process
as the model. That second port is the fast one (see `make bench`).

    POST .../classify   body: the model's input as raw uint8 bytes (application/
                        octet-stream; 784 for the 28x28 Fashion-MNIST CNN), or for 28x28
                        grey models a PNG/JPEG file (image/png, image/jpeg)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from typing import Any

import numpy as np
import uvicorn

from tiffin import image
from tiffin.asgi import BodyError, media_type, read_body
from tiffin.asgi import send_json as _answer
from tiffin.batcher import Batcher, Overloaded

MAX_BODY = 8 * 1024 * 1024
FAST_HOST = os.environ.get("TIFFIN_FAST_HOST", "0.0.0.0")
FAST_PORT = os.environ.get("TIFFIN_FAST_PORT", "3002")  # "off" serves the hot path on BentoML's port only
log = logging.getLogger("tiffin")


class Metrics:
    """Prometheus series for the hot path, on BentoML's /metrics beside its own. Created in
    the worker (after BentoML has set up multi-process collection), once per process."""

    _made: "Metrics | None" = None

    def __init__(self) -> None:
        import prometheus_client as prom

        self.answered = prom.Counter("tiffin_hot_path_requests", "hot-path requests by outcome", ["outcome"])
        self.batch_size = prom.Histogram("tiffin_hot_path_batch_size", "requests per model batch",
                                         buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.batch_seconds = prom.Histogram("tiffin_hot_path_batch_seconds", "model time per batch",
                                            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
        self.queue_seconds = prom.Histogram("tiffin_hot_path_queue_wait_seconds",
                                            "queue wait of the oldest request in each batch",
                                            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))

    @classmethod
    def get(cls) -> "Metrics":
        if cls._made is None:
            cls._made = cls()
        return cls._made

    def on_batch(self, size: int, seconds: float, oldest_wait: float) -> None:
        self.answered.labels("ok").inc(size)
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.queue_seconds.observe(oldest_wait)


class HotPath:
    def __init__(self) -> None:
        self.batcher: Batcher | None = None
        self.metrics: Metrics | None = None
        self.tag = ""
        self.classes: list[str] = []
        self._set_shape((image.SIDE, image.SIDE))

    def attach(self, batcher: Batcher, tag: str, classes: list[str], shape: tuple[int, ...], metrics: Metrics | None = None) -> None:
        self.batcher, self.tag, self.classes, self.metrics = batcher, tag, classes, metrics
        self._set_shape(tuple(shape))

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        # worked out once here, not on every request
        self.shape, self.raw_bytes, self.shown = shape, math.prod(shape), "x".join(map(str, shape))
        self.grey28 = shape == (image.SIDE, image.SIDE)

    async def _refuse(self, send, status: int, message: str, headers: tuple = ()) -> None:
        if self.metrics is not None:
            self.metrics.answered.labels({503: "busy", 500: "error"}.get(status, "bad_request")).inc()
        await _answer(send, status, {"error": message}, headers)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if not scope["path"].endswith("/classify"):
            return await _answer(send, 404, {"error": "the hot path serves POST .../classify"})
        if scope["method"] != "POST":
            return await _answer(send, 405, {"error": "use POST"})
        try:
            body = await read_body(scope, receive, MAX_BODY)
        except BodyError as exc:
            return await self._refuse(send, exc.status, str(exc))
        if body is None:
            return
        media = media_type(scope)
        grey28, shown = self.grey28, self.shown
        if media == "application/octet-stream":
            if len(body) != self.raw_bytes:
                return await self._refuse(send, 400, f"raw pixels must be {self.raw_bytes} bytes ({shown} uint8), got {len(body)}")
            pixels = np.frombuffer(body, dtype=np.uint8).reshape(self.shape)
        elif media in ("image/png", "image/jpeg") and grey28:
            try:  # decoding a photo takes milliseconds: in a thread, so the loop keeps serving
                pixels = await asyncio.to_thread(image.decode_image, body)
            except image.InvalidImage as exc:
                return await self._refuse(send, 400, str(exc))
        else:
            accepted = "or image/png or image/jpeg" if grey28 else "(this model takes raw tensors only)"
            return await self._refuse(send, 415, f"send application/octet-stream (raw {shown} uint8) {accepted}, "
                                                 f"not {media or 'no Content-Type'}")
        if self.batcher is None:
            return await self._refuse(send, 503, "the model is still loading", ((b"retry-after", b"1"),))
        try:
            probs, batch_size = await self.batcher.submit(pixels)
        except Overloaded as exc:
            return await self._refuse(send, 503, str(exc), ((b"retry-after", str(int(exc.retry_after)).encode()),))
        except Exception as exc:  # the model failed on this batch: say so, the worker lives on
            log.exception("hot path batch failed")
            return await self._refuse(send, 500, f"the model failed on this batch ({type(exc).__name__}); try again")
        best = int(np.argmax(probs))
        # Large label sets (the 1000-class benchmark model) answer their top 5, not every class.
        shown_classes = range(len(probs)) if len(probs) <= 10 else np.argsort(probs)[::-1][:5]
        await _answer(send, 200, {"label": self.classes[best],
                                  "probabilities": {self.classes[i]: float(probs[i]) for i in shown_classes},
                                  "model": self.tag, "batch_size": batch_size})


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: BentoML owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class Listener:
    """Serves an ASGI app on host:port inside the current event loop. SO_REUSEPORT lets
    every worker of the service bind the same port; the kernel spreads connections."""

    def __init__(self, app: Any, host: str, port: int):
        self.app, self.host, self.port = app, host, port
        self._server = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that name it, and
        # without it Nagle + delayed ACKs hold each small answer back ~40 ms.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        # log_config=None: leave the worker's logging (BentoML's, or our JSON lines) alone;
        # proxy_headers=False: the hot path never reads the client address, so no middleware.
        config = uvicorn.Config(self.app, lifespan="off", access_log=False, log_config=None, log_level="warning",
                                server_header=False, date_header=False, proxy_headers=False, backlog=4096, timeout_keep_alive=30)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
        log.info("hot path listening on http://%s:%d/classify", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 15)
