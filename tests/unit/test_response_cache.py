"""The response cache on its own: what its key tells apart, its byte bound, its age limit,
and that the backend keeps only the model's own answers, per version."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tiffin import config
from tiffin.families import textcnn
from tiffin.runtime import cache
from tiffin.runtime.backends import InProcess
from tiffin.runtime.cache import ResponseCache, key_of


def test_the_key_tells_apart_version_shape_dtype_and_kind():
    pixels = np.arange(784, dtype=np.uint8).reshape(28, 28)
    base = key_of("fashion-cnn", "v1", pixels)
    assert key_of("fashion-cnn", "v1", pixels.copy()) == base
    assert key_of("fashion-cnn", "v1", np.asfortranarray(pixels)) == base  # same values, other memory order
    others = [
        key_of("fashion-cnn", "v2", pixels),  # a promotion never meets the old version's answers
        key_of("other-model", "v1", pixels),
        key_of("fashion-cnn", "v1", pixels.reshape(784)),  # equal bytes, another shape
        key_of("fashion-cnn", "v1", pixels.reshape(14, 56)),
        key_of("fashion-cnn", "v1", pixels.view(np.int8)),  # equal bytes, another dtype
        key_of("fashion-cnn", "v1", pixels.tobytes().decode("latin-1")),  # equal bytes as text
    ]
    assert base not in others and len(set(others)) == len(others)
    assert key_of("m", "v", {"hr": 1, "temp": 0.5}) == key_of("m", "v", {"temp": 0.5, "hr": 1})
    assert key_of("m", "v", {"hr": 1}) != key_of("m", "v", {"hr": 2})


def _answer(i: int) -> dict:
    return {"probabilities": {"rotten": 1 - i / 1e6, "fresh": i / 1e6}, "model": "m:v", "batch_size": 8}


def test_resident_bytes_never_pass_the_bound_and_the_oldest_go_first():
    store = ResponseCache("m", "v", max_bytes=20_000)
    most = 0
    for i in range(2_000):
        store.put(key_of("m", "v", f"text {i}"), _answer(i))
        most = max(most, store.bytes)
        assert store.bytes <= 20_000
        if i % 7 == 0:  # a hit makes an entry the newest
            assert store.get(key_of("m", "v", "text 0")) is not None
    assert most > 18_000 and 0 < len(store) < 2_000
    assert store.get(key_of("m", "v", "text 0")) is not None  # kept by its hits
    assert store.get(key_of("m", "v", "text 1")) is None  # the oldest left first
    assert store.get(key_of("m", "v", "text 1999")) == _answer(1999)
    one = cache.resident_bytes(_answer(1))
    assert store.bytes == len(store) * (one + len(key_of("m", "v", "x")) + 33 + cache.ENTRY_OVERHEAD)


def test_entries_older_than_the_ttl_are_not_used(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(cache.time, "monotonic", lambda: now[0])
    store = ResponseCache("m", "v", max_bytes=1 << 20, ttl_s=5)
    store.put(b"k", _answer(1))
    now[0] = 104.9
    assert store.get(b"k") == _answer(1)
    now[0] = 105.1
    assert store.get(b"k") is None and len(store) == 0 and store.bytes == 0


class Counting:
    """A text classifier that counts what it is asked, and fails on "boom"."""

    classes = ["rotten", "fresh"]

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, texts):
        if "boom" in texts:
            raise RuntimeError("boom")
        self.seen += texts
        return np.array([[0.25, 0.75]] * len(texts), dtype=np.float32)


def test_the_backend_asks_the_model_once_per_input_and_never_keeps_a_failure(monkeypatch):
    monkeypatch.setenv("TIFFIN_CACHE", "review-textcnn")
    config.settings.cache_clear()
    try:
        model = Counting()
        backend = InProcess(textcnn.FAMILY, model, "review-textcnn:v1")

        async def run():
            first = await backend.predict(["a", "b"])
            again = await backend.predict(["b", "a", "c"])
            assert cache.OUTCOME.get() == "miss" and again[:2] == first[::-1]
            assert (await backend.predict(["c"]))[0]["model"] == "review-textcnn:v1" and cache.OUTCOME.get() == "hit"
            for _ in range(2):
                with pytest.raises(RuntimeError):
                    await backend.predict(["boom"])
            backend.swap(Counting(), "review-textcnn:v2")  # a new version starts with its own, empty cache
            assert (await backend.predict(["a"]))[0]["model"] == "review-textcnn:v2"

        asyncio.run(run())
        assert model.seen == ["a", "b", "c"]
        backend.close()
    finally:
        config.settings.cache_clear()


def _png(seed: int) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_a_repeated_upload_is_decoded_once_and_the_memo_keeps_its_bound(monkeypatch):
    from tiffin.runtime import uploads
    from tiffin.wire import images

    monkeypatch.setenv("TIFFIN_CACHE", "fashion-cnn")
    monkeypatch.setenv("TIFFIN_CACHE_MB", "0.01")  # 10,485 bytes: 10 entries of 784 pixels
    config.settings.cache_clear()
    uploads.memo.cache_clear()
    decoded = []
    real = images.to_pixels
    monkeypatch.setattr(images, "to_pixels", lambda img: decoded.append(img) or real(img))
    try:
        memo = uploads.memo()

        async def run():
            first = await uploads.decode(_png(0))
            again = await uploads.decode(_png(0))
            assert again is first and len(decoded) == 1 and not again.flags.writeable
            assert np.array_equal(first, images.decode_image(_png(0)))
            with pytest.raises(images.InvalidImage):
                await uploads.decode(b"\x89PNG not really")
            for seed in range(1, 40):
                await uploads.decode(_png(seed))
                assert memo.bytes <= memo.max_bytes
            assert 0 < len(memo) < 40 and memo.get(memo.key(_png(0))) is None  # the oldest went first

        asyncio.run(run())
    finally:
        config.settings.cache_clear()
        uploads.memo.cache_clear()


def test_without_the_image_cache_no_upload_is_kept(monkeypatch):
    from tiffin.runtime import uploads

    monkeypatch.setenv("TIFFIN_CACHE", "review-minilm")
    config.settings.cache_clear()
    uploads.memo.cache_clear()
    try:
        assert uploads.memo() is None
        assert asyncio.run(uploads.decode(_png(1))).flags.writeable
    finally:
        config.settings.cache_clear()
        uploads.memo.cache_clear()
