"""Train the large sentiment tier: a classification head on frozen MiniLM sentence
embeddings. The encoder's files are copied into the store entry beside the head."""

from __future__ import annotations

import time

import torch

from tiffin.families import minilm
from tiffin.wire.catalog import SENTIMENT_LABELS
from train import datasets
from train.common import Reference, Run, classifier_metrics, parse

ENCODER_DIR = "encoder"
ARCH = {"hidden": 256, "dropout": 0.3, "max_tokens": minilm.MAX_TOKENS}
OPTIM = {"lr": 2e-3, "batch_size": 128, "weight_decay": 1e-3}


def main() -> str:
    run = Run(parse(__doc__, epochs=8), datasets.rotten_tomatoes())
    x, y = run.training_rows(600)
    x_test, y_test = (run.data.x_test[:400], run.data.y_test[:400]) if run.args.quick else (run.data.x_test, run.data.y_test)
    encoder_dir = datasets.minilm_dir()
    encoder = minilm.SentenceEncoder(encoder_dir)
    start = time.perf_counter()
    # The encoder is frozen, so its embeddings are computed once, not every epoch.
    train_embeddings, test_embeddings = encoder.encode(x), encoder.encode(x_test)
    head = minilm.EmbeddingHead(encoder.dim, ARCH["hidden"], dropout=ARCH["dropout"])
    config = {"encoder_dir": ENCODER_DIR, "dim": encoder.dim, "hidden": ARCH["hidden"], "labels": SENTIMENT_LABELS}
    return run.fit_and_save(
        minilm.FAMILY,
        head,
        train_embeddings,
        torch.as_tensor(y),
        classifier_metrics(head, test_embeddings, torch.as_tensor(y_test)),
        params=ARCH | OPTIM | {"test_rows": len(y_test)},
        config=config | {"max_tokens": minilm.MAX_TOKENS},
        title="Rotten Tomatoes MiniLM + head",
        seconds_before=time.perf_counter() - start,
        copy_dirs={ENCODER_DIR: encoder_dir},
        reference=Reference(x_test, test_embeddings, SENTIMENT_LABELS),
    )


if __name__ == "__main__":
    main()
