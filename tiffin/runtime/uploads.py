"""Where an uploaded image is decoded: a small one where it arrived, on the event loop (~30 µs,
less than a hop to a thread costs), a larger one in a thread, so the loop keeps serving."""

from __future__ import annotations

import asyncio

import numpy as np

from tiffin.wire import images


async def decode(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (28, 28), as `images.decode_image`; raises `images.InvalidImage`."""
    img = images.open_image(data)  # the header only
    if img.width * img.height <= images.INLINE_PIXELS:
        return images.to_pixels(img)
    return await asyncio.to_thread(images.to_pixels, img)
