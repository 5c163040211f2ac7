"""Concurrent single-item requests are batched by the runners' adaptive batchers."""

import asyncio

import httpx
import pytest

from tiffin.wire import images
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW
from train import datasets

pytestmark = pytest.mark.integration
CONCURRENCY = 48


async def _burst(url: str, make_request) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY)) as c:
        return await asyncio.gather(*(make_request(c, i) for i in range(CONCURRENCY)))


def _batches(responses: list[httpx.Response]) -> list[int]:
    assert [r.status_code for r in responses] == [200] * len(responses), {r.text for r in responses}
    return [r.json()["batch_size"] for r in responses]


def test_images_are_batched(server):
    x = datasets.fashion_mnist().x_test[:CONCURRENCY]
    sizes = _batches(
        asyncio.run(
            _burst(
                server.url,
                lambda c, i: c.post("/classify_image", files={"image": ("i.png", images.encode_png(x[i]), "image/png")}),
            )
        )
    )
    assert max(sizes) > 1, sizes


def test_texts_are_batched(server):
    sizes = _batches(
        asyncio.run(
            _burst(
                server.url,
                lambda c, i: c.post("/classify_text", json={"text": f"review number {i}: a fine film", "tier": "small"}),
            )
        )
    )
    assert max(sizes) > 1, sizes


def test_demand_rows_are_batched(server):
    sizes = _batches(
        asyncio.run(_burst(server.url, lambda c, i: c.post("/predict_demand", json={**EXAMPLE_DEMAND_ROW, "hr": i % 24})))
    )
    assert max(sizes) > 1, sizes


def test_batch_size_metric_is_exported(server):
    # BentoML's own histogram of adaptive batch sizes, observed by the runner processes.
    text = httpx.get(server.url + "/metrics", timeout=10).text
    assert "bentoml_service_adaptive_batch_size" in text
