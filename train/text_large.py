"""Train the large sentiment tier: a classification head on frozen MiniLM sentence
embeddings. The encoder's files are copied into the store entry beside the head."""

from __future__ import annotations

import time

import torch

from tiffin.families import minilm
from tiffin.wire.catalog import SENTIMENT_LABELS
from train import datasets
from train.common import classifier_metrics, parse, train_and_save

ENCODER_DIR = "encoder"


def main() -> str:
    args = parse(__doc__, epochs=8)
    data = datasets.rotten_tomatoes()
    x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:600], y_train[:600], x_test[:400], y_test[:400]
    params = {
        "hidden": 256,
        "dropout": 0.3,
        "epochs": args.epochs,
        "lr": 2e-3,
        "batch_size": 128,
        "weight_decay": 1e-3,
        "max_tokens": minilm.MAX_TOKENS,
        "train_rows": len(y_train),
        "test_rows": len(y_test),
        "seed": args.seed,
    }
    encoder_dir = datasets.minilm_dir()
    start = time.perf_counter()
    encoder = minilm.SentenceEncoder(encoder_dir)
    # The encoder is frozen, so its embeddings are computed once, not every epoch.
    etr, ete = encoder.encode(x_train), encoder.encode(x_test)
    head = minilm.EmbeddingHead(encoder.dim, params["hidden"], dropout=params["dropout"])
    config = {
        "encoder_dir": ENCODER_DIR,
        "dim": encoder.dim,
        "hidden": params["hidden"],
        "labels": SENTIMENT_LABELS,
        "max_tokens": minilm.MAX_TOKENS,
    }
    return train_and_save(
        minilm.FAMILY,
        head,
        etr,
        torch.as_tensor(y_train),
        evaluate=classifier_metrics(head, ete, torch.as_tensor(y_test)),
        reported=("test_accuracy", "test_loss"),
        args=args,
        params=params,
        data=data,
        config=config,
        title="Rotten Tomatoes MiniLM + head",
        seconds_before=time.perf_counter() - start,
        copy_dirs={ENCODER_DIR: encoder_dir},
    )


if __name__ == "__main__":
    main()
