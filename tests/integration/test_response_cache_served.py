"""The response cache in a real server (TIFFIN_CACHE=all, a small bound): a repeated input is
a hit with the same answer on every front end; the key is the decoded pixels, so another PNG
of the same pixels hits too; the resident bytes stay under the bound; the series count it."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tiffin.deploy.serve import Server
from tiffin.wire import images

pytestmark = pytest.mark.integration
LIMIT_MB = 0.05  # 52,428 bytes: some 40 image answers


@pytest.fixture(scope="module")
def cached(model_store):
    with Server(env={"TIFFIN_CACHE": "all", "TIFFIN_CACHE_MB": str(LIMIT_MB), "TIFFIN_API_WORKERS": "1"}) as srv:
        yield srv


def _png(pixels: np.ndarray, level: int = 6) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG", compress_level=level)
    return out.getvalue()


def _series(url: str, name: str, model: str) -> float:
    lines = httpx.get(url + "/metrics", timeout=10).text.splitlines()
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(name + "{") and f'model="{model}"' in x)


def test_a_repeated_image_is_a_hit_with_the_same_answer(cached):
    pixels = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    first, again = _png(pixels, 6), _png(pixels, 1)  # other bytes, the same pixels
    assert first != again
    with httpx.Client(base_url=cached.url, timeout=30) as client:
        answers = [client.post("/classify_image", files={"image": ("x.png", b, "image/png")}) for b in (first, first, again)]
        decoded = images.decode_image(first)  # what the route made of the upload (a light ground is inverted)
        oip = {"name": "image", "datatype": "UINT8", "shape": [1, 28, 28], "data": decoded.reshape(-1).tolist()}
        over_oip = client.post("/v2/models/fashion-cnn/infer", json={"inputs": [oip]})
    assert [a.headers["x-tiffin-cache"] for a in answers] == ["miss", "hit", "hit"]
    bodies = [a.json() for a in answers]
    for body in bodies[1:]:
        body.pop("batch_size"), bodies[0].pop("batch_size", None)
        assert body == bodies[0]
    assert over_oip.status_code == 200 and over_oip.headers["x-tiffin-cache"] == "hit"  # every front end shares it


def test_the_cache_stays_in_its_bound_and_counts(cached):
    model = "fashion-cnn"
    hits0, misses0 = (
        _series(cached.url, "tiffin_cache_hits_total", model),
        _series(cached.url, "tiffin_cache_misses_total", model),
    )
    rng = np.random.default_rng(4)
    with httpx.Client(base_url=cached.url, timeout=30) as client:
        for _ in range(200):
            png = _png(rng.integers(0, 256, (28, 28), dtype=np.uint8))
            assert (
                client.post("/classify_image", files={"image": ("x.png", png, "image/png")}).headers["x-tiffin-cache"] == "miss"
            )
        text = {"text": "A tender, funny film.", "tier": "small"}
        assert [client.post("/classify_text", json=text).headers["x-tiffin-cache"] for _ in range(2)] == ["miss", "hit"]
    assert _series(cached.url, "tiffin_cache_misses_total", model) - misses0 == 200
    assert _series(cached.url, "tiffin_cache_hits_total", model) == hits0
    resident = _series(cached.url, "tiffin_cache_bytes", model)
    assert 0.8 * LIMIT_MB * 2**20 < resident <= LIMIT_MB * 2**20  # full, and never past the bound
    assert _series(cached.url, "tiffin_cache_evictions_total", model) > 100
