"""Review sentiment, small tier: the tokenizer/vocabulary, the TextCNN, its predictor, and the
OIP signature both text tiers share.

The vocabulary is built from the training split only and saved with the model as
JSON, so serving tokenizes exactly as training did.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from tiffin import store
from tiffin.families import frozen
from tiffin.families.base import Family, Predictor, tempered
from tiffin.families.signature import OIPError, Signature, TensorSpec, class_tensors, items
from tiffin.wire import catalog
from tiffin.wire.schemas import TextRequest

LABELS = catalog.SENTIMENT_LABELS
PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class Vocabulary:
    def __init__(self, tokens: Sequence[str], max_len: int = 64):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.max_len = max_len

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 2, max_size: int = 20000, max_len: int = 64) -> Vocabulary:
        counts = Counter(tok for text in texts for tok in tokenize(text))
        common = [t for t, n in counts.most_common(max_size) if n >= min_freq]
        return cls([PAD, UNK, *common], max_len=max_len)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> int64 (N, L) ids, L = longest text (at least 5, the widest filter) capped at max_len."""
        unk = self.stoi[UNK]
        rows = [[self.stoi.get(t, unk) for t in tokenize(s)][: self.max_len] for s in texts]
        width = max(5, max((len(r) for r in rows), default=0))
        out = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def to_json(self) -> dict:
        return {"tokens": self.itos, "max_len": self.max_len}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        return cls(data["tokens"], max_len=int(data["max_len"]))

    def __len__(self) -> int:
        return len(self.itos)


class TextCNN(nn.Module):
    """Kim (2014)-style CNN: parallel 1-D convolutions, max-over-time pooling."""

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        filters: int = 100,
        widths: Sequence[int] = (3, 4, 5),
        classes: int = 2,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w) for w in widths)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(filters * len(widths), classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).transpose(1, 2)
        lengths = (ids != 0).sum(dim=1, keepdim=True)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))
            # Pool only over windows that start inside the text (always at least the first),
            # so the answer for a text does not depend on how long its batch-mates are.
            valid = torch.arange(h.shape[2], device=ids.device) < (lengths - conv.kernel_size[0] + 1).clamp(min=1)
            pooled.append(h.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=2))
        return self.out(self.drop(torch.cat(pooled, dim=1)))


class SentimentPredictor(Predictor):
    """What both text tiers share: texts in, (N, 2) probabilities (rotten, fresh) out."""

    @property
    def classes(self) -> list[str]:
        return self.config["labels"]

    def warmup(self) -> None:
        self(["a warm-up sentence for the model"] * 4)


class TextCNNPredictor(SentimentPredictor):
    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        super().__init__(model_dir, config, device)
        self.vocab = Vocabulary.from_json(config["vocab"])
        net = TextCNN(len(self.vocab), config["dim"], config["filters"], config["widths"], len(config["labels"]))
        self.model = tempered(store.load_weights(net, model_dir, device), config)
        # texts of other lengths in batches of other sizes: the graph must not keep either
        said = ["a warm-up sentence for the model", "bad", "a long and winding review of a film that goes on and on for a while"]
        examples = [self.vocab.encode(said[:2]), self.vocab.encode(said[1:2]), self.vocab.encode(said[::-1])]
        self.run = frozen.fastest(device, self.forward, self.model, examples)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(ids), dim=1).float()

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        ids = self.vocab.encode(texts).to(self.device)
        return self.run(ids).cpu().numpy()


def oip_texts(inputs: dict[str, np.ndarray]) -> list[str]:
    """OIP `text`: BYTES [N] of UTF-8 -> texts, each checked as the typed route checks it."""
    x = inputs["text"]
    if x.dtype != np.object_:
        raise OIPError("input text must be a BYTES tensor of UTF-8 strings")
    texts = []
    for raw in items(x, "text"):
        try:
            text = bytes(raw).decode("utf-8")
            TextRequest(text=text)
        except UnicodeDecodeError:
            raise OIPError("input text holds bytes that are not UTF-8") from None
        except ValidationError as exc:
            raise OIPError(f"input text: {exc.errors()[0]['msg']}") from None
        if not text.strip():
            raise OIPError("input text holds a blank string")
        texts.append(text)
    return texts


SIGNATURE = Signature([TensorSpec("text", "BYTES", [-1])], class_tensors(len(LABELS)), oip_texts)
FAMILY = Family(
    catalog.TEXT_SMALL,
    "TextCNN",
    TextCNNPredictor,
    "text",
    "sentiment",
    "small",
    setting="text_small_model",
    train="train.text",
    signature=SIGNATURE,
)
FAMILIES = (FAMILY,)
