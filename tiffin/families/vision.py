"""What the image families share: a predictor that takes uint8 batches and answers class
probabilities, run the fastest way the device allows (docs/decisions/003-image-predictor.md).

On CUDA the weights are fp16, the uint8 batch (4x smaller than floats) goes from pinned
memory without blocking and is normalised on the GPU, and the pass replays as a CUDA graph
(tiffin/families/cuda_graphs.py); on CPU it stays float32 and runs as one frozen TorchScript
graph, which holds the GIL only on entry and exit (tiffin/families/frozen.py). Both run
channels_last, with each BatchNorm folded into the convolution before it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tiffin import config, store
from tiffin.families import cuda_graphs, frozen
from tiffin.families.base import Predictor, tempered
from tiffin.wire import images


def fold_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    with warnings.catch_warnings():
        # the module imports torch.utils.mkldnn, whose TorchScript decorators warn on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.fx.experimental.optimization import fuse
    return fuse(net)


class ImagePredictor(Predictor):
    """uint8 (N, *input_shape) in, class probabilities out. A family gives `network` (its
    architecture from the stored config) and `prepare` (uint8 on the device -> model input)."""

    builds_alone = True  # fold_batchnorm traces with torch.fx; warmup may capture CUDA graphs

    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        super().__init__(model_dir, config, device)
        self.input_shape = tuple(config.get("input_shape", (images.SIDE, images.SIDE)))
        self.cuda = device.type == "cuda"
        self.dtype = torch.float16 if self.cuda else torch.float32
        net = fold_batchnorm(tempered(store.load_weights(self.network(config), model_dir, device), config))
        self.model = net.to(dtype=self.dtype, memory_format=torch.channels_last)
        self.graphed: cuda_graphs.GraphedForward | None = None
        # random pixels: the check that the graph answers as eager does must see rows that differ
        rng = torch.Generator().manual_seed(0)
        examples = [torch.randint(0, 256, (n, *self.input_shape), dtype=torch.uint8, generator=rng) for n in (2, 1, 3)]
        self.run = frozen.fastest(device, self.forward, self.model, examples)

    @property
    def classes(self) -> list[str]:
        return self.config["classes"]

    def network(self, config: dict[str, Any]) -> torch.nn.Module:
        raise NotImplementedError

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, *input_shape) on the device -> float32 (N, classes) probabilities there."""
        x = self.prepare(x).contiguous(memory_format=torch.channels_last)
        return torch.softmax(self.model(x).float(), dim=1)

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, *input_shape) -> float32 (N, classes) probabilities."""
        pixels = images.check_batch(pixels, self.input_shape)
        if self.graphed is not None:
            return self.graphed(pixels)
        x = torch.from_numpy(np.require(pixels, None, ("C", "W")))
        if self.cuda:
            x = x.pin_memory().to(self.device, non_blocking=True)
        return self.run(x).cpu().numpy()

    def warmup(self) -> None:
        settings = config.settings()
        if self.cuda and settings.cuda_graphs and self.graphed is None:
            self.graphed = cuda_graphs.GraphedForward(self.forward, self.input_shape, self.device, settings.cuda_graph_buckets)
        self(np.zeros((8, *self.input_shape), dtype=np.uint8))
