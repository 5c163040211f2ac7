"""Train the Fashion-MNIST CNN and save it into the BentoML store."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tiffin import store
from tiffin.families import fashion
from train import datasets
from train import loop
from train.common import Timer, curve_path, parse, report


def main() -> str:
    args = parse(__doc__, epochs=4)
    data = datasets.fashion_mnist()
    x_train, y_train = data.x_train, data.y_train
    if args.quick:
        x_train, y_train = x_train[:6000], y_train[:6000]
    xtr = fashion.normalise(x_train)
    ytr = torch.as_tensor(y_train)
    xte = fashion.normalise(data.x_test)
    yte = torch.as_tensor(data.y_test)

    params = {"channels": 32, "hidden": 128, "dropout": 0.3, "epochs": args.epochs, "lr": 3e-3,
              "batch_size": 128, "weight_decay": 1e-4, "train_rows": len(ytr), "seed": args.seed}
    model = fashion.FashionCNN(params["channels"], params["hidden"], dropout=params["dropout"])

    def evaluate() -> dict[str, float]:
        logits = loop.predict_in_batches(model, xte)
        return {"test_loss": float(F.cross_entropy(logits, yte)), "test_accuracy": float((logits.argmax(1) == yte).float().mean())}

    steps = (len(ytr) + params["batch_size"] - 1) // params["batch_size"]
    with Timer() as timer:
        history = loop.fit(
            model, loop.shuffled(xtr, ytr, params["batch_size"], args.seed), steps, F.cross_entropy, evaluate,
            epochs=args.epochs, lr=params["lr"], weight_decay=params["weight_decay"], description="fashion-cnn",
        )
    metrics = {k: history[-1][k] for k in ("test_accuracy", "test_loss")}
    config = {"arch": fashion.FAMILY.arch, "channels": params["channels"], "hidden": params["hidden"], "classes": fashion.CLASSES,
              "side": fashion.SIDE, "mean": fashion.MEAN, "std": fashion.STD}
    curve = loop.plot_curve(history, curve_path("image"), "Fashion-MNIST CNN")
    tag = store.save(fashion.FAMILY, model, config, metrics=metrics, dataset=data.name, fingerprint=data.fingerprint,
                     params=params, seconds=timer.seconds, curve=curve)
    report(tag, metrics)
    return tag


if __name__ == "__main__":
    main()
