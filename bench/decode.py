"""`make bench`'s decode section: what the image routes' decode of one 28x28 Fashion-MNIST upload
(`images.decode_image`: header checks, decode, Fashion-MNIST-style preprocessing) costs beside
bare Pillow's open, load and asarray of the same bytes, in-process. The two are timed in
alternating rounds and each keeps its best round: this VM's speed drifts within a minute."""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

GOAL = 1.3  # the front-door issue's: a small PNG/JPEG decodes in at most 1.3x bare Pillow


def _bare(data: bytes):  # no import in here: it would count against bare Pillow's time
    img = Image.open(io.BytesIO(data))
    img.load()
    return np.asarray(img)


def _round_us(fn, data: bytes, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(data)
    return (time.perf_counter() - start) / calls * 1e6


def decode_cost(pixels, rounds: int = 15, calls: int = 1000) -> list[dict]:
    """One check per format: tiffin's decode / bare Pillow's, best round against best round."""
    from tiffin.wire import images

    checks = []
    for fmt in ("PNG", "JPEG"):
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format=fmt)
        data = out.getvalue()
        bare = ours = float("inf")
        for _ in range(rounds):
            bare = min(bare, _round_us(_bare, data, calls))
            ours = min(ours, _round_us(images.decode_image, data, calls))
        checks.append(
            {
                "route": "image",
                "what": f"28x28 {fmt} decode / bare Pillow's open, load, asarray ({ours:.1f} / {bare:.1f} µs)",
                "value": round(ours / bare, 2),
                "goal": GOAL,
                "lower_is_better": True,
            }
        )
    return checks
