"""Images on the wire: PNG/JPEG uploads decoded to Fashion-MNIST-style pixels, pixels encoded
as PNG, and the check every typed batch of pixels passes. numpy and Pillow only."""

from __future__ import annotations

import io
import warnings

import numpy as np

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


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes of any size, grey or colour -> uint8 (28, 28), Fashion-MNIST style.

    Fashion-MNIST shows a light garment on a black background, centred in a square. A
    photo is usually the reverse, so an image whose border is brighter than its centre
    is inverted; a non-square image is padded to a square with its border colour.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise InvalidImage("the image field is empty; send a PNG or JPEG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ("PNG", "JPEG"):
                raise InvalidImage(f"unsupported image format {img.format}; send PNG or JPEG")
            if img.width * img.height > MAX_PIXELS:
                raise InvalidImage(f"image is {img.width}x{img.height}; at most {MAX_PIXELS} pixels are accepted")
            img.load()
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        raise InvalidImage("the upload is not a PNG or JPEG image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"image is too large to decode: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"the image could not be decoded (truncated or corrupt?): {exc}") from None

    grey = np.asarray(ImageOps.exif_transpose(img).convert("L"), dtype=np.uint8)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    fill = int(np.median(border))
    h, w = grey.shape
    side = max(h, w)
    square = np.full((side, side), fill, dtype=np.uint8)
    square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = grey
    small = np.asarray(Image.fromarray(square).resize((SIDE, SIDE), Image.Resampling.BILINEAR))
    centre = small[SIDE // 4 : -SIDE // 4, SIDE // 4 : -SIDE // 4]
    if fill > float(centre.mean()):
        small = 255 - small
    return np.ascontiguousarray(small, dtype=np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (28, 28) -> PNG bytes; used by examples, clients and tests."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()
