"""Images on the wire: PNG/JPEG uploads decoded to Fashion-MNIST-style pixels, pixels encoded
as PNG, and the check every typed batch of pixels passes. numpy and Pillow only."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tiffin.wire.limits import MAX_PIXELS

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
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except _FAILURES as exc:
        raise _invalid(exc) from None
    if img.format not in ("PNG", "JPEG"):
        raise InvalidImage(f"unsupported image format {img.format}; send PNG or JPEG")
    if img.width * img.height > MAX_PIXELS:
        raise InvalidImage(f"image is {img.width}x{img.height}; at most {MAX_PIXELS} pixels are accepted")
    return img


def to_pixels(img: Image.Image) -> np.ndarray:
    """An opened upload of any size, grey or colour -> uint8 (28, 28), Fashion-MNIST style.

    Fashion-MNIST shows a light garment on a black background, centred in a square. A
    photo is usually the reverse, so an image whose border is brighter than its centre
    is inverted; a non-square image is padded to a square with its border colour.
    """
    try:
        img.load()
    except _FAILURES as exc:
        raise _invalid(exc) from None
    if any(key in img.info for key in _ORIENTATION_KEYS):
        img = ImageOps.exif_transpose(img)
    grey = np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.uint8)
    border = np.sort(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    half = len(border) // 2  # the border's median, as np.median gives it, rounded down
    fill = (int(border[half - 1]) + int(border[half])) // 2 if len(border) % 2 == 0 else int(border[half])
    h, w = grey.shape
    if (h, w) == (SIDE, SIDE):
        small = grey  # already square and the model's size: padding and resizing change nothing
    else:
        side = max(h, w)
        square = np.full((side, side), fill, dtype=np.uint8)
        square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = grey
        small = np.asarray(Image.fromarray(square).resize((SIDE, SIDE), Image.Resampling.BILINEAR))
    centre = small[SIDE // 4 : -SIDE // 4, SIDE // 4 : -SIDE // 4]
    if fill * centre.size > int(centre.sum()):  # the border is brighter than the centre's mean
        small = 255 - small
    return np.ascontiguousarray(small, dtype=np.uint8)


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (28, 28): `to_pixels(open_image(data))`."""
    return to_pixels(open_image(data))


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (28, 28) -> PNG bytes; used by examples, clients and tests."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()
