"""Concurrent single-item requests are batched by each model's batcher."""

import asyncio

import bentoml
import httpx
import pytest

from tiffin import families
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


def test_batch_metrics_are_exported_per_model_version(server):
    """Counted once per batch on the model threads, labelled by model and exact version: a
    burst at every model gives more requests than batches."""
    from prometheus_client.parser import text_string_to_metric_families

    png = images.encode_png(datasets.fashion_mnist().x_test[0])
    calls = [
        lambda c, i: c.post("/classify_image", files={"image": ("i.png", png, "image/png")}),
        lambda c, i: c.post("/classify_text", json={"text": f"film {i}", "tier": "small"}),
        lambda c, i: c.post("/classify_text", json={"text": f"film {i}", "tier": "large"}),
        lambda c, i: c.post("/predict_demand", json={**EXAMPLE_DEMAND_ROW, "hr": i % 24}),
    ]
    for call in calls:
        _batches(asyncio.run(_burst(server.url, call)))

    text = httpx.get(server.url + "/metrics", timeout=10).text
    samples = {
        (s.name, s.labels.get("model"), s.labels.get("version")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("tiffin_model_")
    }
    for spec in families.TRAINED:
        version = bentoml.models.get(spec.tag).tag.version
        count = samples[("tiffin_model_batch_size_count", spec.name, version)]
        total = samples[("tiffin_model_batch_size_sum", spec.name, version)]
        assert 1 <= count < total, (spec.name, count, total)
        assert samples[("tiffin_model_batch_seconds_count", spec.name, version)] == count
