"""Loaded models ready to predict: the code a runner service wraps.

Each predictor is built from a model-store directory (weights + config written by
`tiffin.store.save`) and takes a whole batch, so the service's adaptive batcher
decides the batch and the predictor only runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tiffin import demand, image, minilm, store, text


class Predictor:
    config: dict[str, Any]
    device: torch.device

    def warmup(self) -> None:
        """Run a representative batch once so the first real request pays no lazy-init cost."""
        raise NotImplementedError


class ImagePredictor(Predictor):
    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        self.config, self.device = config, device
        self.model = store.load_weights(image.FashionCNN(config["channels"], config["hidden"], len(config["classes"])), model_dir, device)

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) -> float32 (N, classes) probabilities."""
        x = image.normalise(pixels, self.config["mean"], self.config["std"]).to(self.device)
        return torch.softmax(self.model(x), dim=1).float().cpu().numpy()

    def warmup(self) -> None:
        self(np.zeros((8, image.SIDE, image.SIDE), dtype=np.uint8))


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
