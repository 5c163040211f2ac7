"""Benchmark-only image classifiers with random weights, never trained: a ResNet-50-sized
one (a typical vision model's compute) and a probe with next to no compute.

`make bench` saves them into the model store as `bench-resnet50` and `bench-probe` (label
task=benchmark, `python -m bench.models`) and serves them with
`TIFFIN_IMAGE_MODEL=bench-resnet50:latest` through the very same image runner, hot path and
batcher as the trained Fashion-MNIST CNN, so the numbers describe the serving code at the
compute cost of a typical vision model, not a toy. Written here because torchvision cannot
be imported beside our torch build.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from tiffin.families.base import Family
from tiffin.families.fashion import FashionPredictor
from tiffin.families.vision import ImagePredictor

INPUT_SHAPE = (3, 224, 224)  # one uint8 CHW image per request
# ImageNet channel statistics: the usual preprocessing for a ResNet-50.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CLASSES = [f"class-{i}" for i in range(1000)]


class BenchProbe(nn.Module):
    """Next to no compute (one linear layer on 28x28 pixels): served, it shows what the
    serving path itself costs per request, to compare with a bare HTTP echo."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inputs: int, width: int, stride: int = 1):
        super().__init__()
        out = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(inputs, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        # zero-initialised residual scale (as in "bag of tricks" ResNets): 16 stacked random
        # blocks otherwise grow activations past fp16's range on a GPU
        nn.init.zeros_(self.body[-1].weight)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and inputs == out
            else nn.Sequential(nn.Conv2d(inputs, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class BenchResNet50(nn.Module):
    """The ResNet-50 v1.5 layout (3-4-6-3 bottlenecks, stride on the 3x3): 25.6 M parameters."""

    def __init__(self, classes: int = len(CLASSES)):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        inputs = 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(inputs, width, stride if i == 0 else 1))
                inputs = width * Bottleneck.expansion
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inputs, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@functools.cache
def _statistics(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Made once per device: a copy from host memory is not allowed while a CUDA graph is
    # being captured (tiffin/families/cuda_graphs.py), and the warm-up runs before the capture.
    return (torch.tensor(MEAN, device=device).view(1, 3, 1, 1), torch.tensor(STD, device=device).view(1, 3, 1, 1))


def normalise(pixels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (N, 3, H, W) on any device -> standardised `dtype`, on the same device."""
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) pixels, got {tuple(pixels.shape)}")
    mean, std = _statistics(pixels.device)
    return ((pixels.float() / 255.0 - mean) / std).to(dtype)


class ResNetPredictor(ImagePredictor):
    def network(self, config: dict[str, Any]) -> torch.nn.Module:
        return BenchResNet50(len(config["classes"]))

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        return normalise(pixels, self.dtype)


class ProbePredictor(FashionPredictor):
    """Fashion-MNIST's input and preprocessing, next to no compute."""

    def network(self, config: dict[str, Any]) -> torch.nn.Module:
        return BenchProbe(len(config["classes"]))


RESNET50 = Family("bench-resnet50", "BenchResNet50", ResNetPredictor, "image", "benchmark", setting="bench_model")
PROBE = Family("bench-probe", "BenchProbe", ProbePredictor, "image", "benchmark", setting="bench_model")
FAMILIES = (RESNET50, PROBE)
