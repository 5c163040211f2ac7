"""The BERT encoder under the MiniLM tier, and its WordPiece tokenizer.

The forward pass is transformers' `BertModel` (absolute positions, exact GELU, post-norm
layers, no pooler), written with the same parameter names, so it reads and writes the
checkpoint's own `model.safetensors` and `config.json`; the tokenizer is the checkpoint's
`tokenizer.json` run by HF tokenizers. Why not transformers itself: it and the sympy and
networkx it pulls in through torch were 0.26 GB of the MiniLM runner's 1.21 GB image
(docs/decisions/016-image-sizes.md). tests/unit/test_bert.py holds both to transformers'
outputs and token ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional

# The weights at rest: half the bytes of float32 (44 MB less in MiniLM's image) and computed in
# float32 after loading; training rounds its weights to this (`BertEncoder.round_to_stored`)
# before it computes what it fits the head on, so serving reproduces training.
STORED_DTYPE = torch.float16
# in the checkpoint, never read by the encoder: the next-sentence pooler, a position buffer
UNUSED = ("pooler.", "embeddings.position_ids")


class Embeddings(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        width = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], width, padding_idx=c.get("pad_token_id", 0))
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], width)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], width)
        self.LayerNorm = nn.LayerNorm(width, eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None] + self.token_type_embeddings(types)
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        width = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.dropout_p = c["attention_probs_dropout_prob"]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, self.heads, -1).transpose(1, 2)

        out = functional.scaled_dot_product_attention(
            heads(self.query(x)),
            heads(self.key(x)),
            heads(self.value(x)),
            attn_mask=mask,
            dropout_p=self.dropout_p if self.training else 0.0,
        )
        return out.transpose(1, 2).reshape(n, length, width)


class Output(nn.Module):
    """Dense, dropout, the residual added, LayerNorm: how each BERT block ends."""

    def __init__(self, c: dict, width_in: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width_in, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.self = SelfAttention(c)
        self.output = Output(c, c["hidden_size"])

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = Output(c, c["intermediate_size"])

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`mask`: additive, (N, 1, 1, L), 0 where a token is read and very negative at padding."""
        attended = self.attention(hidden, mask)
        return self.output(self.intermediate(attended), attended)


class Stack(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))


class BertEncoder(nn.Module):
    """Token ids in, the last layer's token states out: (N, L) -> (N, L, hidden_size)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only BERT with exact GELU and absolute positions (MiniLM's) is supported")
        self.hidden_size = int(config["hidden_size"])
        self.embeddings = Embeddings(config)
        self.encoder = Stack(config)

    @classmethod
    def load(cls, directory: Path) -> BertEncoder:
        """From a checkpoint directory: config.json and model.safetensors (never a pickle)."""
        directory = Path(directory)
        model = cls(json.loads((directory / "config.json").read_text()))
        weights = {k: v.float() for k, v in load_file(str(directory / "model.safetensors")).items() if not k.startswith(UNUSED)}
        model.load_state_dict(weights)  # strict: a missing or unknown tensor is an error
        return model

    def save(self, directory: Path) -> None:
        """model.safetensors at STORED_DTYPE; the directory's config.json stays as it is."""
        tensors = {k: v.detach().to("cpu", STORED_DTYPE).contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(Path(directory) / "model.safetensors"), metadata={"format": "pt"})

    @torch.no_grad()
    def round_to_stored(self) -> None:
        """Round every weight to what `save` keeps, so outputs computed now match a reload."""
        for p in self.parameters():
            p.copy_(p.to(STORED_DTYPE).to(p.dtype))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return run_layers(self.encoder.layer, self.embeddings(input_ids, token_type_ids), attention_mask)


def run_layers(layers: Sequence[nn.Module], hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token states through `layers` (all of an encoder's, or a slice: fine-tuning runs the
    lower and upper ones apart); `mask`: (N, L), 1 where a token is read, 0 at padding."""
    additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in layers:
        hidden = layer(hidden, additive)
    return hidden


class WordPiece:
    """The checkpoint's tokenizer.json: lower-casing, [CLS] ... [SEP], truncated to
    `max_tokens`, padded to the longest text of each batch."""

    def __init__(self, directory: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        # the file pads every text to a fixed 128; padding to each batch's longest is less compute
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
        self.unk_id = self.tokenizer.token_to_id("[UNK]")

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [sum(e.attention_mask) for e in self.tokenizer.encode_batch(list(texts))]

    def pieces(self, words: Sequence[str]) -> list[list[int]]:
        """Each word's wordpiece ids, without [CLS]/[SEP] or padding."""
        encoded = self.tokenizer.encode_batch(list(words), add_special_tokens=False)
        return [e.ids[: sum(e.attention_mask)] for e in encoded]

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": torch.tensor([e.ids for e in encoded], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encoded], dtype=torch.long),
            "token_type_ids": torch.tensor([e.type_ids for e in encoded], dtype=torch.long),
        }
