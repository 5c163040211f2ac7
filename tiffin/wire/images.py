"""Images on the wire: PNG/JPEG uploads decoded to Fashion-MNIST-style pixels, pixels encoded
as PNG, and the check every typed batch of pixels passes. numpy and Pillow only."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tiffin.wire.limits import MAX_PIXELS, MAX_SIDE

SIDE = 28  # the Fashion-MNIST CNN's input: SIDE x SIDE grey pixels


class InvalidImage(ValueError):
    """The upload is not a usable PNG/JPEG image; the message says why."""


def check_batch(pixels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A runner's typed input, checked per request before it joins a batch (a bad one would
    fail every request batched with it): (N, *shape) whole numbers 0..255 -> uint8.
    JSON clients send plain integers, which arrive as int64."""
    shown = ", ".join(map(str, shape))
    if pixels.ndim != len(shape) + 1 or tuple(pixels.shape[1:]) != tuple(shape):
        raise ValueError(
            f"pixels must be a batch of shape (N, {shown}); got {tuple(pixels.shape)} (one image: wrap it in a list)"
        )
    if len(pixels) == 0:
        raise ValueError("pixels is an empty batch; send at least one image")
    if pixels.dtype != np.uint8:
        if pixels.dtype.kind not in "iu" or pixels.min() < 0 or pixels.max() > 255:
            raise ValueError(
                f"pixels must be whole numbers 0..255 (uint8); got {pixels.dtype} from {pixels.min()} to {pixels.max()}"
            )
        pixels = pixels.astype(np.uint8)
    return pixels


# Where an image may say it is rotated (EXIF, ImageMagick's text chunk, XMP): only then is
# ImageOps.exif_transpose worth its cost (it parses all of them, ~4 us, on every image).
_ORIENTATION_KEYS = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")
# Images up to this many pixels decode in ~30 us: cheaper where they arrive than a thread hop.
INLINE_PIXELS = 64 * 64


def _invalid(exc: Exception) -> InvalidImage:
    """Pillow's many failures -> InvalidImage, with a message that says what to send."""
    if isinstance(exc, InvalidImage):
        return exc
    if isinstance(exc, UnidentifiedImageError):
        return InvalidImage("the upload is not a PNG or JPEG image")
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return InvalidImage(f"image is too large to decode: {exc}")
    return InvalidImage(f"the image could not be decoded (truncated or corrupt?): {exc}")


# The formats served, tried in this order: Pillow otherwise asks each registered plugin in
# turn (BMP, DIB, GIF and JPEG before PNG), ~2 us a PNG. MPO opens through JPEG's plugin.
_FORMATS = ("PNG", "JPEG")

_FAILURES = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
    OSError,
    SyntaxError,
    ValueError,
)


def open_image(data: bytes) -> Image.Image:
    """Read an upload's header only: PNG or JPEG, at most MAX_PIXELS; its pixels are decoded
    by `to_pixels` (cheap to call where the upload arrives, to choose where to decode it)."""
    if not data:
        raise InvalidImage("the image field is empty; send a PNG or JPEG file")
    try:
        # PNG, JPEG or MPO (a JPEG with more pictures after it, as phones write). Pillow's own
        # decompression-bomb warning (past Image.MAX_IMAGE_PIXELS, 89 M) is left a warning: the
        # limits below, checked before any pixel is decoded, are the ones served (catching it as
        # an error cost ~2 us an upload); past twice that Pillow raises, which is caught here.
        img = Image.open(io.BytesIO(data), formats=_FORMATS)
    except UnidentifiedImageError:
        raise _unsupported(data) from None
    except _FAILURES as exc:
        raise _invalid(exc) from None
    if img.width * img.height > MAX_PIXELS:
        raise InvalidImage(f"image is {img.width}x{img.height}; at most {MAX_PIXELS} pixels are accepted")
    if max(img.width, img.height) > MAX_SIDE:
        raise InvalidImage(f"image is {img.width}x{img.height}; at most {MAX_SIDE} pixels on a side are accepted")
    return img


def _unsupported(data: bytes) -> InvalidImage:
    """Neither PNG nor JPEG: named where Pillow knows the format, so the message says what came."""
    try:
        other = Image.open(io.BytesIO(data)).format
    except _FAILURES as exc:
        return _invalid(exc)
    return InvalidImage(f"unsupported image format {other}; send PNG or JPEG")


@functools.lru_cache(maxsize=256)
def _border_index(h: int, w: int) -> np.ndarray:
    """Flat indices of an h x w image's outermost rows and columns (corners twice, as they lie
    in both): one `take` gathers the border of a small image."""
    row, col = np.arange(w), np.arange(h) * w
    return np.concatenate([row, (h - 1) * w + row, col, col + w - 1])


def border_median(grey: np.ndarray) -> int:
    """The median of the outermost rows and columns, as np.median gives it, rounded down. A
    small border is sorted; a long one (a 40000000x1 strip has 80 million border pixels) is
    counted per grey level instead, which needs no copy of it."""
    h, w = grey.shape
    n = 2 * (h + w)
    if n <= 4096:
        border = np.sort(grey.ravel().take(_border_index(h, w)))
        lo, hi = int(border[(n - 1) // 2]), int(border[n // 2])
    else:
        edges = (grey[0], grey[-1], grey[:, 0], grey[:, -1])
        # Pillow's histogram counts uint8 in place (np.bincount would widen each pixel to 8 bytes)
        ranks = np.cumsum(sum(np.array(Image.fromarray(np.ascontiguousarray(e)[None]).histogram()) for e in edges))
        lo, hi = (int(np.searchsorted(ranks, k + 1)) for k in ((n - 1) // 2, n // 2))
    return (lo + hi) // 2


def to_pixels(img: Image.Image) -> np.ndarray:
    """An opened upload of any size, grey or colour -> uint8 (28, 28), Fashion-MNIST style.

    Fashion-MNIST shows a light garment on a black background, centred in a square. A
    photo is usually the reverse, so an image whose border is brighter than its centre
    is inverted; a non-square image is scaled to fit the square and padded with its border
    colour. The work and memory stay bounded by the upload's pixels (at most MAX_PIXELS):
    a large JPEG is decoded at 1/2-1/8 scale (libjpeg's), and nothing is padded before it
    is scaled down (a 50000x800 strip never becomes a 50000x50000 square).
    """
    if img.format in ("JPEG", "MPO") and max(img.size) > 4 * SIDE:
        img.draft("L", (4 * SIDE, 4 * SIDE))  # still at least 4x the model's side
    try:
        img.load()
    except _FAILURES as exc:
        raise _invalid(exc) from None
    if not img.info.keys().isdisjoint(_ORIENTATION_KEYS):
        img = ImageOps.exif_transpose(img)
    grey = np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.uint8)
    fill = border_median(grey)
    h, w = grey.shape
    if (h, w) == (SIDE, SIDE):
        small = grey  # already square and the model's size: padding and resizing change nothing
    else:
        scale = SIDE / max(h, w)
        fit_w, fit_h = max(1, round(w * scale)), max(1, round(h * scale))
        # reducing_gap: a box reduction by a whole factor first, so a huge image costs no huge filter table
        fitted = np.asarray(Image.fromarray(grey).resize((fit_w, fit_h), Image.Resampling.BILINEAR, reducing_gap=3.0))
        small = np.full((SIDE, SIDE), fill, dtype=np.uint8)
        top, left = (SIDE - fit_h) // 2, (SIDE - fit_w) // 2
        small[top : top + fit_h, left : left + fit_w] = fitted
    centre = small[SIDE // 4 : -SIDE // 4, SIDE // 4 : -SIDE // 4]
    if fill * centre.size > int(centre.sum()):  # the border is brighter than the centre's mean
        small = 255 - small
    return small  # contiguous uint8 on every branch: asarray of an "L" image, np.full, 255 - x


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (28, 28): `to_pixels(open_image(data))`."""
    return to_pixels(open_image(data))


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (28, 28) -> PNG bytes; used by examples, clients and tests."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()
