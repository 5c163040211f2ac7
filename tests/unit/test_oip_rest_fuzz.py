"""OIP REST on its own (no server), fed what a hostile or careless client sends: wrong JSON
types in every field, absurd shapes, non-JSON constants, deep nesting, bad header lengths.
Every answer is a 4xx with a JSON error (or a 200), never a 5xx."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiffin.families import fashion, textcnn
from tiffin.oip.models import Registry
from tiffin.oip.rest import build_app
from tiffin.runtime.backends import InProcess
from tiffin.wire.catalog import FASHION_CLASSES, SENTIMENT_LABELS


class Model:
    def __init__(self, classes, shape=None):
        self.classes, self.input_shape = classes, shape

    def __call__(self, batch):
        return np.full((len(batch), len(self.classes)), 1.0 / len(self.classes), dtype=np.float32)


@pytest.fixture(scope="module")
def app():
    oip = build_app()
    oip.state.registry = Registry(
        [
            InProcess(fashion.FAMILY, Model(FASHION_CLASSES, (28, 28)), "fashion-cnn:v1"),
            InProcess(textcnn.FAMILY, Model(SENTIMENT_LABELS), "review-textcnn:v1"),
        ]
    )
    return oip


def post(app, path: str, content: bytes, headers: dict | None = None) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oip") as client:
            return await client.post(path, content=content, headers={"content-type": "application/json", **(headers or {})})

    return asyncio.run(go())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
tensor = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["image", "text"]) | json_values,
        "datatype": st.sampled_from(["UINT8", "BYTES", "FP32", "INT64"]) | json_values,
        "shape": st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=4) | json_values,
        "data": st.lists(st.integers(0, 300) | st.text(max_size=4), max_size=8) | json_values,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": json_values}) | json_values,
    },
)
request = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=3) | json_values},
    optional={
        "outputs": st.lists(st.dictionaries(st.sampled_from(["name", "parameters"]), json_values), max_size=2) | json_values,
        "parameters": json_values,
        "id": json_values,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request, st.sampled_from(["fashion-cnn", "review-textcnn"]))
def test_any_json_request_is_answered_without_a_5xx(app, doc, model):
    r = post(app, f"/models/{model}/infer", json.dumps(doc).encode())
    assert r.status_code < 500, (doc, r.text)
    assert r.status_code == 200 or "error" in r.json()


@pytest.mark.parametrize(
    "body, headers, fragment",
    [
        (b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1e400, 28], "data": []}]}', {}, "shape"),
        (b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [Infinity], "data": []}]}', {}, "Infinity"),
        (
            b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1000000000000000000000000000000], "data": []}]}',
            {},
            "shape",
        ),
        (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, ""),
        (b'{"inputs": [], "outputs": {"a": 1}}', {}, "outputs"),
        (b'{"inputs": [{"name": ["x"], "datatype": "UINT8", "shape": [1], "data": [1]}]}', {}, "string name"),
        (
            b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 28, 28], "parameters": {"binary_data_size": "9"}}]}',
            {},
            "binary_data_size",
        ),
        (b'{"inputs": []}', {"inference-header-content-length": b"\xb2"}, "does not fit"),
    ],
)
def test_known_500s_are_now_4xx(app, body, headers, fragment):
    r = post(app, "/models/fashion-cnn/infer", body, headers)
    assert 400 <= r.status_code < 500, r.text
    assert fragment in r.json()["error"]


def test_protocol_edges(app):
    import gzip
    import zlib

    doc = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}
    plain = json.dumps(doc).encode()
    for encoding, body in (("gzip", gzip.compress(plain)), ("deflate", zlib.compress(plain))):
        r = post(app, "/models/review-textcnn/infer", body, {"content-encoding": encoding})
        assert r.status_code == 200, r.text
    r = post(app, "/models/review-textcnn/infer", plain, {"content-encoding": "br"})
    assert r.status_code == 415 and "gzip, deflate" in r.json()["error"]
    bomb = gzip.compress(b" " * (17 * 1024 * 1024))  # 17 MB of spaces in 17 KB
    assert post(app, "/models/review-textcnn/infer", bomb, {"content-encoding": "gzip"}).status_code == 413
    doc["outputs"] = [{"name": "label", "parameters": {"classification": 2}}]
    r = post(app, "/models/review-textcnn/infer", json.dumps(doc).encode())
    assert r.status_code == 400 and "class_count" in r.json()["error"]

    async def get(path):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oip") as client:
            return await client.get(path)

    r = asyncio.run(get("/models/review-textcnn/statistics"))
    assert r.status_code == 404 and "no such route" in r.json()["error"]
