"""The image hot path: a bare ASGI route mounted in the image runner service.

BentoML's typed request path costs milliseconds of event-loop CPU per request (IO
descriptors, pydantic, a hop to the runner process); here one request is: read the body,
check it, queue the pixels on an in-process `Batcher`, write a small JSON answer. Input
checks and error answers match the typed API's.

    POST /fast/classify   body: 784 raw bytes (application/octet-stream, a 28x28 uint8
                          image) or a PNG/JPEG file (image/png, image/jpeg)
"""

from __future__ import annotations

import numpy as np

from tiffin import image
from tiffin.asgi import BodyError, media_type, read_body
from tiffin.asgi import send_json as _answer
from tiffin.batcher import Batcher, Overloaded

MAX_BODY = 8 * 1024 * 1024
RAW_BYTES = image.SIDE * image.SIDE


class HotPath:
    def __init__(self) -> None:
        self.batcher: Batcher | None = None
        self.tag = ""
        self.classes: list[str] = []

    def attach(self, batcher: Batcher, tag: str, classes: list[str]) -> None:
        self.batcher, self.tag, self.classes = batcher, tag, classes

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
            return await _answer(send, exc.status, {"error": str(exc)})
        if body is None:
            return
        media = media_type(scope)
        if media == "application/octet-stream":
            if len(body) != RAW_BYTES:
                return await _answer(send, 400, {"error": f"raw pixels must be {RAW_BYTES} bytes (28x28 uint8), got {len(body)}"})
            pixels = np.frombuffer(body, dtype=np.uint8).reshape(image.SIDE, image.SIDE)
        elif media in ("image/png", "image/jpeg"):
            try:
                pixels = image.decode_image(body)
            except image.InvalidImage as exc:
                return await _answer(send, 400, {"error": str(exc)})
        else:
            return await _answer(send, 415, {"error": f"send application/octet-stream (raw 28x28 uint8) or image/png or image/jpeg, not {media or 'no Content-Type'}"})
        if self.batcher is None:
            return await _answer(send, 503, {"error": "the model is still loading"}, ((b"retry-after", b"1"),))
        try:
            probs, batch_size = await self.batcher.submit(pixels)
        except Overloaded as exc:
            return await _answer(send, 503, {"error": str(exc)}, ((b"retry-after", str(int(exc.retry_after)).encode()),))
        best = int(np.argmax(probs))
        await _answer(send, 200, {"label": self.classes[best], "probabilities": dict(zip(self.classes, probs.tolist())),
                                  "model": self.tag, "batch_size": batch_size})
