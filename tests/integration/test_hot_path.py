"""The image bento served alone, through its lean route (/fast/classify) and its typed route
(/classify_image), both answered by the front door on BentoML's port: same answers as the
model, batches under load, clear 4xx for bad input, 503 + Retry-After only past its bound,
metrics per batch."""

from __future__ import annotations

import asyncio
import collections

import aiohttp
import httpx
import numpy as np
import pytest
import torch

from tiffin import families
from tiffin.deploy.serve import Server
from tiffin.families import fashion
from tiffin.wire import images
from train import datasets

pytestmark = pytest.mark.integration
RAW = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def runner(server):  # after the main server fixture, so TIFFIN_*_MODEL pins are set
    # a small queue bound so a burst of 64 overflows it
    with Server("services.image_runner:ImageRunner", env={"TIFFIN_HOT_MAX_QUEUE": "8"}) as srv:
        yield srv


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the `name` samples whose labels include `labels` (over every worker)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics").text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def closed_loop(url: str, body: bytes, clients: int, each: int) -> list[tuple[int, dict, dict]]:
    """`clients` connections, each sending `each` requests one after another."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)) as http:

        async def client():
            out = []
            for _ in range(each):
                async with http.post(url, data=body, headers=RAW) as r:
                    out.append((r.status, dict(r.headers), await r.json()))
            return out

        return [answer for answers in await asyncio.gather(*(client() for _ in range(clients))) for answer in answers]


def test_the_hot_path_and_the_typed_route_answer_like_the_model(runner):
    x = datasets.fashion_mnist().x_test[:6]
    _, local = families.load(fashion.FAMILY, torch.device("cpu"))
    for pixels, expected in zip(x, local(x)):
        png = images.encode_png(pixels)
        answers = [
            httpx.post(runner.fast_url + "/classify", content=pixels.tobytes(), headers=RAW),
            httpx.post(runner.fast_url + "/classify", content=png, headers={"content-type": "image/png"}),
            httpx.post(runner.url + "/classify_image", files={"image": ("i.png", png, "image/png")}),
        ]
        for r in answers:
            assert r.status_code == 200, r.text
            got = r.json()
            np.testing.assert_allclose([got["probabilities"][c] for c in fashion.CLASSES], expected, atol=1e-5)
            assert got["model"] == fashion.FAMILY.tag


@pytest.mark.parametrize(
    "body, headers, status, fragment",
    [
        (b"\0" * 100, RAW, 400, "must be 784 bytes"),
        (b"not a png", {"content-type": "image/png"}, 400, "not a PNG or JPEG"),
        (b"{}", {"content-type": "application/json"}, 415, "application/octet-stream"),
        (b"\0" * (9 * 1024 * 1024), RAW, 413, "at most"),
    ],
)
def test_bad_input(runner, body, headers, status, fragment):
    r = httpx.post(runner.fast_url + "/classify", content=body, headers=headers, timeout=30)
    assert r.status_code == status and fragment in r.json()["error"]


def test_wrong_route_and_method(runner):
    assert httpx.post(runner.fast_url + "/predict", content=b"").status_code == 404
    r = httpx.get(runner.fast_url + "/classify")
    assert r.status_code == 405 and "POST" in r.json()["error"]


@pytest.mark.parametrize(
    "pixels, fragment",
    [
        ([[0] * 28] * 28, "(N, 28, 28); got (28, 28)"),  # one image, not wrapped in a batch
        ([[[0] * 27] * 28], "(N, 28, 28); got (1, 28, 27)"),
        ([[[300] * 28] * 28], "whole numbers 0..255"),
        ([[[0.5] * 28] * 28], "whole numbers 0..255"),
        ([], "(N, 28, 28); got (0,)"),
    ],
)
def test_typed_route_checks_each_request_before_batching(runner, pixels, fragment):
    r = httpx.post(runner.url + "/classify", json={"pixels": pixels}, timeout=30)
    assert r.status_code == 400 and fragment in r.text, r.text


def test_a_bad_request_never_fails_its_batch_mates(runner):
    """Typed requests share BentoML's batches: a bad one checked only in the model would fail
    every request batched with it (500s for good input, as it did before the per-request check).
    8 good ones at once: no more than this runner's queue bound holds, so none is refused (with
    16 a slow batch let the queue overflow, a 503 that says nothing about bad inputs)."""
    good = datasets.fashion_mnist().x_test[:1].tolist()  # plain JSON integers

    async def burst():
        async with aiohttp.ClientSession() as http:

            async def post(pixels):
                async with http.post(runner.url + "/classify", json={"pixels": pixels}) as r:
                    return r.status

            return await asyncio.gather(*(post(good if i % 2 else [[1] * 28] * 28) for i in range(16)))

    statuses = asyncio.run(burst())
    assert statuses == [400, 200] * 8, statuses


def test_burst_past_the_bound_gets_503_with_retry_after_then_recovers(runner):
    raw = datasets.fashion_mnist().x_test[0].tobytes()
    busy_before = metric(runner.url, "tiffin_model_requests_total", model="fashion-cnn", outcome="busy")
    answers = asyncio.run(closed_loop(runner.fast_url + "/classify", raw, clients=64, each=1))
    codes = collections.Counter(status for status, _, _ in answers)
    assert set(codes) <= {200, 503} and codes[200] > 0, codes
    assert codes[503] > 0, f"64 concurrent requests should overflow a queue of 8: {codes}"
    for status, headers, body in answers:
        if status == 503:
            assert int(headers["Retry-After"]) >= 1 and "queued" in body["error"]
    assert max(body["batch_size"] for status, _, body in answers if status == 200) > 1
    assert metric(runner.url, "tiffin_model_requests_total", model="fashion-cnn", outcome="busy") - busy_before == codes[503]
    # load gone: a lone request is answered at once
    assert httpx.post(runner.fast_url + "/classify", content=raw, headers=RAW).status_code == 200


def test_512_clients_queue_and_all_succeed_in_full_batches(server):
    """Within the default bound (1024 queued), overload queues instead of failing, and the
    batcher runs full batches; then a lone request is answered alone, at once."""
    raw = datasets.fashion_mnist().x_test[1].tobytes()
    with Server("services.image_runner:ImageRunner") as srv:
        url = srv.fast_url + "/classify"
        answers = asyncio.run(closed_loop(url, raw, clients=512, each=3))
        assert collections.Counter(status for status, _, _ in answers) == {200: 1536}
        sizes = [body["batch_size"] for _, _, body in answers]
        assert max(sizes) == 64 and np.median(sizes) >= 32, collections.Counter(sizes)
        # metrics are counted per batch, and add up to the requests answered: a batch of b
        # answers b requests, so the answers' 1/b add up to the number of batches
        ok = metric(srv.url, "tiffin_model_requests_total", model="fashion-cnn", outcome="ok")
        batches = metric(srv.url, "tiffin_model_batch_size_count", model="fashion-cnn")
        assert ok == 1536 and metric(srv.url, "tiffin_model_batch_size_sum", model="fashion-cnn") == 1536
        assert batches == round(sum(1 / size for size in sizes)), batches
        [(status, _, body)] = asyncio.run(closed_loop(url, raw, clients=1, each=1))
        assert status == 200 and body["batch_size"] == 1
