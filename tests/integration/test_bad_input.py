"""Bad input gets a 4xx whose message names the problem, and never a 5xx or a worker restart."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW

pytestmark = pytest.mark.integration

PNG = Path("services/examples/bag.png").read_bytes()
NOISE = io.BytesIO()
Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(NOISE, format="PNG")
JSON = {"content-type": "application/json"}

CASES = [
    # (id, method kwargs, path, status, fragment of the message)
    (
        "not-an-image",
        dict(files={"image": ("a.png", b"just some text", "image/png")}),
        "/classify_image",
        400,
        "not a PNG or JPEG",
    ),
    (
        "truncated-image",
        dict(files={"image": ("a.png", NOISE.getvalue()[: len(NOISE.getvalue()) // 2], "image/png")}),
        "/classify_image",
        400,
        "truncated",
    ),
    ("empty-image", dict(files={"image": ("a.png", b"", "image/png")}), "/classify_image", 400, "empty"),
    (
        "wrong-field",
        dict(files={"picture": ("a.png", PNG, "image/png")}),
        "/classify_image",
        400,
        "unexpected form field(s) picture",
    ),
    (
        "extra-field",
        dict(files={"image": ("a.png", PNG, "image/png")}, data={"x": "1"}),
        "/classify_image",
        400,
        "unexpected form field(s) x",
    ),
    ("json-to-image", dict(json={"image": "abc"}), "/classify_image", 415, "takes multipart/form-data"),
    (
        "image-too-big",
        dict(files={"image": ("a.png", b"\0" * (9 * 1024 * 1024), "image/png")}),
        "/classify_image",
        413,
        "at most",
    ),
    ("empty-text", dict(json={"text": ""}), "/classify_text", 400, "at least 1 character"),
    ("blank-text", dict(json={"text": "   \n"}), "/classify_text", 400, "blank"),
    ("long-text", dict(json={"text": "word " * 1001}), "/classify_text", 400, "at most 5000 characters"),
    ("missing-text", dict(json={}), "/classify_text", 400, "Field required"),
    ("bad-tier", dict(json={"text": "ok", "tier": "huge"}), "/classify_text", 400, "'small', 'large' or 'auto'"),
    (
        "text-as-plain",
        dict(content=b"hello", headers={"content-type": "text/plain"}),
        "/classify_text",
        415,
        "takes application/json",
    ),
    ("no-content-type", dict(content=b"{}"), "/classify_text", 415, "no Content-Type"),
    ("not-json", dict(content=b"{oops", headers=JSON), "/classify_text", 400, "Invalid JSON"),
    ("json-list", dict(json=[1, 2]), "/classify_text", 400, "should be an object"),
    ("huge-json", dict(content=b'{"text": "' + b"a" * 300_000 + b'"}', headers=JSON), "/classify_text", 413, "at most 65536"),
    (
        "missing-field",
        dict(json={k: v for k, v in EXAMPLE_DEMAND_ROW.items() if k != "hr"}),
        "/predict_demand",
        400,
        "Field required",
    ),
    ("hour-out-of-range", dict(json={**EXAMPLE_DEMAND_ROW, "hr": 25}), "/predict_demand", 400, "less than or equal to 23"),
    ("bad-month", dict(json={**EXAMPLE_DEMAND_ROW, "mnth": "Smarch"}), "/predict_demand", 400, "Input should be 'Jan'"),
    ("leaky-feature", dict(json={**EXAMPLE_DEMAND_ROW, "casual": 3}), "/predict_demand", 400, "Extra inputs are not permitted"),
    ("string-number", dict(json={**EXAMPLE_DEMAND_ROW, "temp": "warm"}), "/predict_demand", 400, "valid number"),
]


@pytest.fixture(scope="module")
def workers_before(server):
    return server.worker_pids()


@pytest.mark.parametrize("kwargs, path, status, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_4xx(server, workers_before, kwargs, path, status, fragment):
    r = httpx.post(server.url + path, timeout=30, **kwargs)
    assert r.status_code == status, r.text
    assert fragment in r.text


def test_chunked_oversized_body_is_refused(server):
    def chunks():
        for _ in range(100):
            yield b"a" * 10_000

    r = httpx.post(server.url + "/classify_text", content=chunks(), headers=JSON, timeout=30)
    assert r.status_code == 413 and "exceeds 65536 bytes" in r.text


def test_no_worker_restarted_and_service_still_answers(server, workers_before):
    assert server.worker_pids() == workers_before
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
    r = httpx.post(server.url + "/classify_text", json={"text": "still here"}, timeout=30)
    assert r.status_code == 200


def test_demand_bento_alone_checks_each_row_before_batching(server):
    """The demand runner is a bento of its own (bentos/demand.yaml): its typed route checks
    every row as the public API does, so one bad row cannot fail the rows batched with it."""
    import asyncio

    import aiohttp

    from tiffin.deploy.serve import Server

    bad = {k: v for k, v in EXAMPLE_DEMAND_ROW.items() if k != "hr"}
    with Server("services.demand_runner:DemandRunner") as runner:
        r = httpx.post(runner.url + "/predict", json={"rows": [{**EXAMPLE_DEMAND_ROW, "hr": 25}]}, timeout=30)
        assert r.status_code == 400 and "less than or equal to 23" in r.text, r.text

        async def burst():
            async with aiohttp.ClientSession() as http:

                async def post(row):
                    async with http.post(runner.url + "/predict", json={"rows": [row]}) as answer:
                        return answer.status

                return await asyncio.gather(*(post(EXAMPLE_DEMAND_ROW if i % 2 else bad) for i in range(32)))

        assert asyncio.run(burst()) == [400, 200] * 16
