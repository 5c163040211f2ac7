"""Train the small sentiment tier (TextCNN on Rotten Tomatoes snippets) and save it."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tiffin import store
from tiffin.families import textcnn
from train import datasets
from train import loop
from train.common import Timer, curve_path, parse, report


def main() -> str:
    args = parse(__doc__, epochs=6)
    data = datasets.rotten_tomatoes()
    x_train, y_train = data.x_train, data.y_train
    if args.quick:
        x_train, y_train = x_train[:3000], y_train[:3000]
    params = {"dim": 128, "filters": 100, "widths": [3, 4, 5], "dropout": 0.5, "max_len": 64, "min_freq": 2,
              "epochs": args.epochs, "lr": 2e-3, "batch_size": 64, "weight_decay": 1e-4,
              "train_rows": len(y_train), "seed": args.seed}
    vocab = textcnn.Vocabulary.build(x_train, min_freq=params["min_freq"], max_len=params["max_len"])
    xtr, ytr = vocab.encode(x_train), torch.as_tensor(y_train)
    xte, yte = vocab.encode(data.x_test), torch.as_tensor(data.y_test)
    model = textcnn.TextCNN(len(vocab), params["dim"], params["filters"], params["widths"], dropout=params["dropout"])

    def evaluate() -> dict[str, float]:
        logits = loop.predict_in_batches(model, xte)
        return {"test_loss": float(F.cross_entropy(logits, yte)), "test_accuracy": float((logits.argmax(1) == yte).float().mean())}

    steps = (len(ytr) + params["batch_size"] - 1) // params["batch_size"]
    with Timer() as timer:
        history = loop.fit(
            model, loop.shuffled(xtr, ytr, params["batch_size"], args.seed), steps, F.cross_entropy, evaluate,
            epochs=args.epochs, lr=params["lr"], weight_decay=params["weight_decay"], description="review-textcnn",
        )
    metrics = {k: history[-1][k] for k in ("test_accuracy", "test_loss")}
    config = {"arch": textcnn.FAMILY.arch, "vocab": vocab.to_json(), "labels": textcnn.LABELS,
              **{k: params[k] for k in ("dim", "filters", "widths")}}
    curve = loop.plot_curve(history, curve_path("text"), "Rotten Tomatoes TextCNN")
    tag = store.save(textcnn.FAMILY, model, config, metrics=metrics, dataset=data.name, fingerprint=data.fingerprint,
                     params=params, seconds=timer.seconds, curve=curve)
    report(tag, metrics)
    return tag


if __name__ == "__main__":
    main()
