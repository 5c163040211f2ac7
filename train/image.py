"""Train the Fashion-MNIST CNN and save it into the BentoML store."""

from __future__ import annotations

import torch

from tiffin.families import fashion
from train import datasets
from train.common import classifier_metrics, parse, train_and_save


def main() -> str:
    args = parse(__doc__, epochs=4)
    data = datasets.fashion_mnist()
    x_train, y_train = data.x_train, data.y_train
    if args.quick:
        x_train, y_train = x_train[:6000], y_train[:6000]
    params = {
        "channels": 32,
        "hidden": 128,
        "dropout": 0.3,
        "epochs": args.epochs,
        "lr": 3e-3,
        "batch_size": 128,
        "weight_decay": 1e-4,
        "train_rows": len(y_train),
        "seed": args.seed,
    }
    model = fashion.FashionCNN(params["channels"], params["hidden"], dropout=params["dropout"])
    config = {
        "channels": params["channels"],
        "hidden": params["hidden"],
        "classes": fashion.CLASSES,
        "side": fashion.SIDE,
        "mean": fashion.MEAN,
        "std": fashion.STD,
    }
    return train_and_save(
        fashion.FAMILY,
        model,
        fashion.normalise(x_train),
        torch.as_tensor(y_train),
        evaluate=classifier_metrics(model, fashion.normalise(data.x_test), torch.as_tensor(data.y_test)),
        reported=("test_accuracy", "test_loss"),
        args=args,
        params=params,
        data=data,
        config=config,
        title="Fashion-MNIST CNN",
    )


if __name__ == "__main__":
    main()
