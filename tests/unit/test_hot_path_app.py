"""The hot path's ASGI app on its own (no server), over an in-process backend: the input rules
follow the model's shape, and a model failure is a JSON 500 that names it, not a dropped
connection."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np

from tiffin.families import fashion
from tiffin.runtime.backends import InProcess
from tiffin.runtime.hotpath import HotPath

RAW = {"content-type": "application/octet-stream"}


def call(app: HotPath, body: bytes, headers: dict) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hot") as client:
            return await client.post("/classify", content=body, headers=headers)

    return asyncio.run(go())


class Model:
    """A predictor: a function of the batch, with the class names and input shape serving reads."""

    def __init__(self, fn, shape: tuple[int, ...], classes: list[str]):
        self.fn, self.input_shape, self.classes = fn, shape, classes

    def __call__(self, batch):
        return self.fn(batch)


def backend_for(fn, shape: tuple[int, ...], classes: list[str], tag: str = "bench:1") -> InProcess:
    return InProcess(fashion.FAMILY, Model(fn, shape, classes), tag, max_batch=4)


def app_for(fn, shape: tuple[int, ...], classes: list[str]) -> HotPath:
    app = HotPath()
    app.attach(backend_for(fn, shape, classes))
    return app


def test_a_three_channel_model_takes_its_own_raw_size_and_no_png():
    classes = [f"class-{i}" for i in range(1000)]
    app = app_for(lambda b: np.full((len(b), 1000), 1e-3, dtype=np.float32), (3, 8, 8), classes)
    r = call(app, bytes(3 * 8 * 8), RAW)
    assert r.status_code == 200 and len(r.json()["probabilities"]) == 5  # top 5 of a large label set
    r = call(app, bytes(64), RAW)
    assert r.status_code == 400 and "192 bytes (3x8x8 uint8)" in r.json()["error"]
    r = call(app, b"\x89PNG", {"content-type": "image/png"})
    assert r.status_code == 415 and "raw tensors only" in r.json()["error"]


def test_a_failing_model_answers_500_with_json():
    def broken(batch):
        raise RuntimeError("CUDA error: out of memory")

    r = call(app_for(broken, (28, 28), ["a", "b"]), bytes(784), RAW)
    assert r.status_code == 500 and "RuntimeError" in r.json()["error"]


def test_batch_answers_are_json_with_every_float32_exact():
    classes = ["T-shirt/top", 'a "quoted" 100% class', "c"]
    backend = backend_for(lambda b: b, (3,), classes, tag="fashion-cnn:%d1")
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 50).astype(np.float32)
    probs[0] = [1e-30, 0.5, 0.5 - 1e-7]
    for row, answer in zip(probs, backend._run(probs)):
        got = json.loads(json.dumps(answer))
        assert got["model"] == "fashion-cnn:%d1" and got["batch_size"] == 50
        assert np.array_equal(np.array([got["probabilities"][c] for c in classes], dtype=np.float32), row)
