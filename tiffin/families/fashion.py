"""Fashion-MNIST garments: the CNN, the one definition of its preprocessing, its predictor,
and its OIP signature.

Training feeds 28x28 uint8 arrays straight from the data set; serving first turns an
uploaded PNG/JPEG of any size into such an array (`tiffin.wire.images.decode_image`). Both
then go through `normalise`, whose constants are saved with the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tiffin.families.base import Family
from tiffin.families.signature import OIPError, Signature, TensorSpec, class_tensors, items
from tiffin.families.vision import ImagePredictor
from tiffin.wire import catalog, images
from tiffin.wire.images import SIDE

CLASSES = catalog.FASHION_CLASSES
# Fashion-MNIST pixel statistics (train split), saved in the model config.
MEAN, STD = 0.2860, 0.3530


class FashionCNN(nn.Module):
    def __init__(self, channels: int = 32, hidden: int = 128, classes: int = 10, dropout: float = 0.3):
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.BatchNorm2d(2 * c),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * c * 7 * 7, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def normalise(pixels: np.ndarray | torch.Tensor, mean: float = MEAN, std: float = STD) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), standardised."""
    t = torch.as_tensor(pixels)
    if t.ndim != 3 or tuple(t.shape[1:]) != (SIDE, SIDE):
        raise ValueError(f"expected (N, {SIDE}, {SIDE}) pixels, got {tuple(t.shape)}")
    return ((t.float() / 255.0 - mean) / std).unsqueeze(1)


class FashionPredictor(ImagePredictor):
    def network(self, config: dict[str, Any]) -> torch.nn.Module:
        return FashionCNN(config["channels"], config["hidden"], len(config["classes"]))

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        return normalise(pixels, self.config["mean"], self.config["std"]).to(self.dtype)


def oip_pixels(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """OIP `image`: UINT8 pixels [N, 28, 28], FP16/FP32 intensities in 0..1, or BYTES [N] of
    PNG/JPEG files -> uint8 (N, 28, 28)."""
    x = inputs["image"]
    if x.dtype in (np.uint8, np.float16, np.float32):
        if x.ndim != 3 or x.shape[1:] != (SIDE, SIDE):
            raise OIPError(f"input image must have shape [N, {SIDE}, {SIDE}], got {list(x.shape)}")
        if x.dtype == np.uint8:
            return np.ascontiguousarray(x)
        # FP16/FP32 pixels are intensities in 0..1 (what a client that normalised already holds).
        if not np.isfinite(x).all() or x.min(initial=0) < 0 or x.max(initial=0) > 1:
            raise OIPError("FP16/FP32 input image must hold finite intensities in 0..1")
        return np.rint(x.astype(np.float32) * 255).astype(np.uint8)
    if x.dtype == np.object_:
        if not x.size:
            return np.zeros((0, SIDE, SIDE), np.uint8)
        try:
            return np.stack([images.decode_image(bytes(b)) for b in items(x, "image")])
        except images.InvalidImage as exc:
            raise OIPError(str(exc)) from None
    raise OIPError(
        f"input image must be UINT8 pixels [N, {SIDE}, {SIDE}] (or FP16/FP32 in 0..1), or BYTES [N] holding PNG/JPEG files"
    )


FAMILY = Family(
    catalog.FASHION,
    "FashionCNN",
    FashionPredictor,
    "image",
    "classification",
    setting="image_model",
    train="train.image",
    signature=Signature([TensorSpec("image", "UINT8", [-1, SIDE, SIDE])], class_tensors(len(CLASSES)), oip_pixels),
)
FAMILIES = (FAMILY,)
