"""Train the Fashion-MNIST CNN and save it into the BentoML store."""

from __future__ import annotations

import torch

from tiffin.families import fashion
from train import datasets
from train.common import Reference, Run, classifier_metrics, parse

ARCH = {"channels": 32, "hidden": 128, "dropout": 0.3}
OPTIM = {"lr": 3e-3, "batch_size": 128, "weight_decay": 1e-4}


def main() -> str:
    run = Run(parse(__doc__, epochs=4), datasets.fashion_mnist())
    x, y = run.training_rows(6000)
    model = fashion.FashionCNN(ARCH["channels"], ARCH["hidden"], dropout=ARCH["dropout"])
    x_test = fashion.normalise(run.data.x_test)
    test = classifier_metrics(model, x_test, torch.as_tensor(run.data.y_test))
    config = {"channels": ARCH["channels"], "hidden": ARCH["hidden"], "classes": fashion.CLASSES, "side": fashion.SIDE}
    config |= {"mean": fashion.MEAN, "std": fashion.STD}
    return run.fit_and_save(
        fashion.FAMILY,
        model,
        fashion.normalise(x),
        torch.as_tensor(y),
        test,
        params=ARCH | OPTIM,
        config=config,
        title="Fashion-MNIST CNN",
        reference=Reference(run.data.x_test, x_test, fashion.CLASSES),
    )


if __name__ == "__main__":
    main()
