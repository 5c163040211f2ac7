"""Where an uploaded image is decoded: a small one where it arrived, on the event loop (~30 µs,
less than a hop to a thread costs), a larger one in a thread, so the loop keeps serving. With
the image model's response cache on, a repeated upload is not decoded again (cache.DecodeMemo)."""

from __future__ import annotations

import asyncio
import functools

import numpy as np

from tiffin.runtime import cache
from tiffin.wire import catalog, images


@functools.cache  # the settings are read once per process
def memo() -> cache.DecodeMemo | None:
    from tiffin.config import settings

    return cache.DecodeMemo(int(settings().cache_mb * 2**20)) if cache.enabled(catalog.FASHION) else None


async def decode(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (28, 28), as `images.decode_image`; raises `images.InvalidImage`."""
    seen = memo()
    if seen is None:
        return await _decode(data)
    key = seen.key(data)
    pixels = seen.get(key)
    if pixels is None:
        pixels = await _decode(data)
        seen.put(key, pixels)
    return pixels


async def _decode(data: bytes) -> np.ndarray:
    img = images.open_image(data)  # the header only
    if img.width * img.height <= images.INLINE_PIXELS:
        return images.to_pixels(img)
    return await asyncio.to_thread(images.to_pixels, img)
