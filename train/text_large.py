"""Train the large sentiment tier: a classification head on frozen MiniLM sentence
embeddings. The encoder's files are copied into the store entry beside the head."""

from __future__ import annotations

import time

import torch

from tiffin.families import minilm
from tiffin.wire.catalog import SENTIMENT_LABELS
from train import datasets
from train.card import Usage
from train.common import Heldout, Reference, Run, parse

ENCODER_DIR = "encoder"
ARCH = {"hidden": 256, "dropout": 0.3, "max_tokens": minilm.MAX_TOKENS}
OPTIM = {"lr": 2e-3, "batch_size": 128, "weight_decay": 1e-3}
USAGE = Usage(
    "Telling a fresh (positive) from a rotten (negative) film-review snippet where the small tier is unsure "
    "(tier=auto), or for every request (tier=large).",
    [
        "The MiniLM encoder is frozen (sentence-transformers' all-MiniLM-L6-v2); only the head saw film reviews. "
        "Other domains drop accuracy (see Out of domain).",
        "English only; texts past 128 wordpieces are cut.",
        "The labels are the critic's fresh/rotten verdict, not the sentence's own tone: some snippets disagree with it.",
    ],
)


def main() -> str:
    run = Run(parse(__doc__, epochs=8), datasets.rotten_tomatoes())
    x, y = run.training_rows(600)
    data, quick = run.data, run.args.quick
    x_val, y_val = (data.x_val[:300], data.y_val[:300]) if quick else (data.x_val, data.y_val)
    x_test, y_test = (data.x_test[:400], data.y_test[:400]) if quick else (data.x_test, data.y_test)
    texts, labels, _ = datasets.amazon_snippets()
    if quick:
        texts, labels = texts[:300], labels[:300]
    encoder_dir = datasets.minilm_dir()
    encoder = minilm.SentenceEncoder(encoder_dir)
    start = time.perf_counter()
    # The encoder is frozen, so its embeddings are computed once, not every epoch.
    train_embeddings, test_embeddings = encoder.encode(x), encoder.encode(x_test)
    heldout = Heldout(
        encoder.encode(x_val),
        torch.as_tensor(y_val),
        test_embeddings,
        torch.as_tensor(y_test),
        domains={"amazon": (encoder.encode(texts), torch.as_tensor(labels))},
    )
    head = minilm.EmbeddingHead(encoder.dim, ARCH["hidden"], dropout=ARCH["dropout"])
    config = {"encoder_dir": ENCODER_DIR, "dim": encoder.dim, "hidden": ARCH["hidden"], "labels": SENTIMENT_LABELS}
    return run.fit_and_save(
        minilm.FAMILY,
        head,
        train_embeddings,
        torch.as_tensor(y),
        heldout,
        params=ARCH | OPTIM | {"test_rows": len(y_test)},
        config=config | {"max_tokens": minilm.MAX_TOKENS},
        title="Rotten Tomatoes MiniLM + head",
        usage=USAGE,
        classes=SENTIMENT_LABELS,
        seconds_before=time.perf_counter() - start,
        copy_dirs={ENCODER_DIR: encoder_dir},
        reference=Reference(x_test, test_embeddings, SENTIMENT_LABELS),
    )


if __name__ == "__main__":
    main()
