"""Loaded models ready to predict: the code a runner service wraps.

Each predictor is built from a model-store directory (weights + config written by
`tiffin.store.save`) and takes a whole batch, so the service's adaptive batcher
decides the batch and the predictor only runs it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tiffin import benchmodels, cuda_graphs, demand, image, minilm, store, text


def _fold_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    with warnings.catch_warnings():
        # the module imports torch.utils.mkldnn, whose TorchScript decorators warn on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.fx.experimental.optimization import fuse
    return fuse(net)


class Predictor:
    config: dict[str, Any]
    device: torch.device

    def warmup(self) -> None:
        """Run a representative batch once so the first real request pays no lazy-init cost."""
        raise NotImplementedError


class ImagePredictor(Predictor):
    """uint8 images in, class probabilities out. The device decides how it runs: on CUDA
    the weights are fp16, the uint8 batch (4x smaller than floats) goes from pinned
    memory without blocking and is normalised on the GPU, and the whole pass replays as a
    CUDA graph; on CPU all of it stays float32 and eager.
    Both run channels_last: on CPU, oneDNN's convolutions then skip a layout reorder on
    every call and max-pooling takes its vectorised kernel; the Fashion-MNIST CNN ran
    1.7-1.9x faster than contiguous at 1 and 2 threads, batch 16-64 (same outputs to 4e-7)."""

    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        self.config, self.device = config, device
        self.input_shape = tuple(config.get("input_shape", (image.SIDE, image.SIDE)))
        self.cuda = device.type == "cuda"
        self.dtype = torch.float16 if self.cuda else torch.float32
        net = store.load_weights(self.network(config), model_dir, device)
        # In eval mode a BatchNorm is a fixed scale and shift: folded into the convolution
        # before it, one op per layer goes (the CNN ran 15-20 % faster; outputs within 4e-7).
        net = _fold_batchnorm(net)
        self.model = net.to(dtype=self.dtype, memory_format=torch.channels_last)
        self.graphed: cuda_graphs.GraphedForward | None = None

    def network(self, config: dict[str, Any]) -> torch.nn.Module:
        return image.FashionCNN(config["channels"], config["hidden"], len(config["classes"]))

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        return image.normalise(pixels, self.config["mean"], self.config["std"]).to(self.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, *input_shape) on the device -> float32 (N, classes) probabilities there."""
        x = self.prepare(x).contiguous(memory_format=torch.channels_last)
        return torch.softmax(self.model(x).float(), dim=1)

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, *input_shape) -> float32 (N, classes) probabilities."""
        pixels = image.check_batch(pixels, self.input_shape)
        if self.graphed is not None:
            return self.graphed(pixels)
        x = torch.from_numpy(np.require(pixels, None, ("C", "W")))
        if self.cuda:
            x = x.pin_memory().to(self.device, non_blocking=True)
        return self.forward(x).cpu().numpy()

    def warmup(self) -> None:
        # On a GPU the forward pass is captured as CUDA graphs, one per batch-size bucket
        # (tiffin/cuda_graphs.py); TIFFIN_CUDA_GRAPHS=off keeps it eager.
        if self.cuda and cuda_graphs.enabled() and self.graphed is None:
            self.graphed = cuda_graphs.GraphedForward(self.forward, self.input_shape, self.device,
                                                      cuda_graphs.buckets_from_env())
        self(np.zeros((8, *self.input_shape), dtype=np.uint8))


class BenchResNetPredictor(ImagePredictor):
    """The ResNet-50-sized benchmark model (tiffin/benchmodels.py) through the same code."""

    def network(self, config: dict[str, Any]) -> torch.nn.Module:
        return benchmodels.BenchResNet50(len(config["classes"]))

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        return benchmodels.normalise(pixels, self.dtype)


class BenchProbePredictor(ImagePredictor):
    """The near-zero-compute benchmark probe, Fashion-MNIST's input and preprocessing."""

    def network(self, config: dict[str, Any]) -> torch.nn.Module:
        return benchmodels.BenchProbe(len(config["classes"]))


class TextCNNPredictor(Predictor):
    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        self.config, self.device = config, device
        self.vocab = text.Vocabulary.from_json(config["vocab"])
        net = text.TextCNN(len(self.vocab), config["dim"], config["filters"], config["widths"], len(config["labels"]))
        self.model = store.load_weights(net, model_dir, device)

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        ids = self.vocab.encode(texts).to(self.device)
        return torch.softmax(self.model(ids), dim=1).float().cpu().numpy()

    def warmup(self) -> None:
        self(["a warm-up sentence for the model"] * 4)


class MiniLMPredictor(Predictor):
    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        self.config, self.device = config, device
        self.encoder = minilm.SentenceEncoder(Path(model_dir) / config["encoder_dir"], device)
        head = minilm.EmbeddingHead(config["dim"], config["hidden"], len(config["labels"]))
        self.head = store.load_weights(head, model_dir, device)

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return torch.softmax(self.head(self.encoder.encode(texts)), dim=1).float().cpu().numpy()

    def warmup(self) -> None:
        self(["a warm-up sentence for the model"] * 4)


class DemandPredictor(Predictor):
    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        self.config, self.device = config, device
        self.encoder = demand.FeatureEncoder.from_json(config["encoder"])
        self.model = store.load_weights(demand.DemandMLP(config["inputs"], config["hidden"]), model_dir, device)

    @torch.inference_mode()
    def __call__(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        columns = {name: [row[name] for row in rows] for name in demand.FEATURES}
        x = torch.as_tensor(self.encoder.encode(columns)).to(self.device)
        return demand.to_counts(self.model(x)).float().cpu().numpy()

    def warmup(self) -> None:
        self([EXAMPLE_DEMAND_ROW] * 4)


EXAMPLE_DEMAND_ROW = {
    "season": 3, "mnth": "July", "hr": 8, "holiday": 0, "weekday": 2, "workingday": 1,
    "weathersit": "clear", "temp": 0.7, "atemp": 0.65, "hum": 0.55, "windspeed": 0.2,
}

# Keyed by the "arch" each training script writes into the model's config.
PREDICTORS: dict[str, type[Predictor]] = {
    "FashionCNN": ImagePredictor,
    "BenchResNet50": BenchResNetPredictor,
    "BenchProbe": BenchProbePredictor,
    "TextCNN": TextCNNPredictor,
    "MiniLM+EmbeddingHead": MiniLMPredictor,
    "DemandMLP": DemandPredictor,
}


def build(model_dir: Path, config: dict[str, Any], device: torch.device) -> Predictor:
    """The predictor for a model-store directory, warmed up."""
    predictor = PREDICTORS[config["arch"]](Path(model_dir), config, device)
    predictor.warmup()
    return predictor


def load(spec_or_tag: store.ModelSpec | str, device: torch.device | None = None) -> tuple[store.Loaded, Predictor]:
    """Open a model from the store and build its predictor."""
    loaded = store.open_model(spec_or_tag)
    return loaded, build(loaded.path, loaded.config, device or store.pick_device())
