"""Train the large sentiment tier: a classification head on frozen MiniLM sentence
embeddings. The encoder's files are copied into the store entry beside the head."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tiffin import store
from tiffin.families import minilm
from tiffin.wire.catalog import SENTIMENT_LABELS
from train import datasets
from train import loop
from train.common import Timer, curve_path, parse, report

ENCODER_DIR = "encoder"


def main() -> str:
    args = parse(__doc__, epochs=8)
    data = datasets.rotten_tomatoes()
    x_train, y_train = data.x_train, data.y_train
    if args.quick:
        x_train, y_train = x_train[:600], y_train[:600]
    x_test, y_test = data.x_test, data.y_test
    if args.quick:
        x_test, y_test = x_test[:400], y_test[:400]
    params = {"hidden": 256, "dropout": 0.3, "epochs": args.epochs, "lr": 2e-3, "batch_size": 128,
              "weight_decay": 1e-3, "max_tokens": minilm.MAX_TOKENS, "train_rows": len(y_train),
              "test_rows": len(y_test), "seed": args.seed}
    encoder_dir = datasets.minilm_dir()
    encoder = minilm.SentenceEncoder(encoder_dir)
    with Timer() as timer:
        # The encoder is frozen, so its embeddings are computed once, not every epoch.
        etr = encoder.encode(x_train)
        ete = encoder.encode(x_test)
        ytr, yte = torch.as_tensor(y_train), torch.as_tensor(y_test)
        head = minilm.EmbeddingHead(encoder.dim, params["hidden"], dropout=params["dropout"])

        def evaluate() -> dict[str, float]:
            logits = loop.predict_in_batches(head, ete)
            return {"test_loss": float(F.cross_entropy(logits, yte)), "test_accuracy": float((logits.argmax(1) == yte).float().mean())}

        steps = (len(ytr) + params["batch_size"] - 1) // params["batch_size"]
        history = loop.fit(
            head, loop.shuffled(etr, ytr, params["batch_size"], args.seed), steps, F.cross_entropy, evaluate,
            epochs=args.epochs, lr=params["lr"], weight_decay=params["weight_decay"], description="review-minilm",
        )
    metrics = {k: history[-1][k] for k in ("test_accuracy", "test_loss")}
    config = {"arch": minilm.FAMILY.arch, "encoder_dir": ENCODER_DIR, "dim": encoder.dim,
              "hidden": params["hidden"], "labels": SENTIMENT_LABELS, "max_tokens": minilm.MAX_TOKENS}
    curve = loop.plot_curve(history, curve_path("text-large"), "Rotten Tomatoes MiniLM + head")
    tag = store.save(minilm.FAMILY, head, config, metrics=metrics, dataset=data.name, fingerprint=data.fingerprint,
                     params=params, seconds=timer.seconds, curve=curve, copy_dirs={ENCODER_DIR: encoder_dir})
    report(tag, metrics)
    return tag


if __name__ == "__main__":
    main()
