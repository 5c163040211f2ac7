"""The image bento served alone, through its lean route: same answers as the model,
batches under load, clear 4xx for bad input, and 503 + Retry-After past its bound."""

from __future__ import annotations

import asyncio
import collections

import httpx
import numpy as np
import pytest
import torch

from tests.serving import Server
from tiffin import datasets, image, predictors, store

pytestmark = pytest.mark.integration
RAW = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def runner(server):  # after the main server fixture, so TIFFIN_*_MODEL pins are set
    # a small queue bound so a burst of 64 overflows it
    with Server("services.image_runner:ImageRunner", env={"TIFFIN_HOT_MAX_QUEUE": "8"}) as srv:
        yield srv


def test_raw_pixels_and_png_match_the_model(runner):
    x = datasets.fashion_mnist().x_test[:6]
    _, local = predictors.load(store.IMAGE, torch.device("cpu"))
    for pixels, expected in zip(x, local(x)):
        for body, headers in ((pixels.tobytes(), RAW), (image.encode_png(pixels), {"content-type": "image/png"})):
            r = httpx.post(runner.url + "/fast/classify", content=body, headers=headers)
            assert r.status_code == 200, r.text
            got = r.json()
            np.testing.assert_allclose([got["probabilities"][c] for c in image.CLASSES], expected, atol=1e-5)
            assert got["model"] == store.IMAGE.tag


@pytest.mark.parametrize("body, headers, status, fragment", [
    (b"\0" * 100, RAW, 400, "must be 784 bytes"),
    (b"not a png", {"content-type": "image/png"}, 400, "not a PNG or JPEG"),
    (b"{}", {"content-type": "application/json"}, 415, "application/octet-stream"),
    (b"\0" * (9 * 1024 * 1024), RAW, 413, "at most"),
])
def test_bad_input(runner, body, headers, status, fragment):
    r = httpx.post(runner.url + "/fast/classify", content=body, headers=headers, timeout=30)
    assert r.status_code == status and fragment in r.json()["error"]


def test_burst_past_the_bound_gets_503_with_retry_after_then_recovers(runner):
    raw = datasets.fashion_mnist().x_test[0].tobytes()

    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=runner.url, timeout=60, limits=httpx.Limits(max_connections=n)) as c:
            return await asyncio.gather(*(c.post("/fast/classify", content=raw, headers=RAW) for _ in range(n)))

    responses = asyncio.run(burst(64))
    codes = collections.Counter(r.status_code for r in responses)
    assert set(codes) <= {200, 503} and codes[200] > 0, codes
    assert codes[503] > 0, f"64 concurrent requests should overflow a queue of 8: {codes}"
    for r in responses:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1 and "queued" in r.json()["error"]
    ok = [r.json()["batch_size"] for r in responses if r.status_code == 200]
    assert max(ok) > 1
    # load gone: a lone request is answered at once
    assert asyncio.run(burst(1))[0].status_code == 200
