"""Review sentiment, small tier: the tokenizer/vocabulary and the TextCNN.

The vocabulary is built from the training split only and saved with the model as
JSON, so serving tokenizes exactly as training did.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

import torch
from torch import nn

LABELS = ["rotten", "fresh"]
MAX_TEXT_CHARS = 5000
# Tier "auto": the small model answers alone when it is at least this sure, else the large one.
CASCADE_THRESHOLD = 0.8
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
    def build(cls, texts: Iterable[str], min_freq: int = 2, max_size: int = 20000, max_len: int = 64) -> "Vocabulary":
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
    def from_json(cls, data: dict) -> "Vocabulary":
        return cls(data["tokens"], max_len=int(data["max_len"]))

    def __len__(self) -> int:
        return len(self.itos)


class TextCNN(nn.Module):
    """Kim (2014)-style CNN: parallel 1-D convolutions, max-over-time pooling."""

    def __init__(self, vocab_size: int, dim: int = 128, filters: int = 100,
                 widths: Sequence[int] = (3, 4, 5), classes: int = 2, dropout: float = 0.5):
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
