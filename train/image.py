"""Train the Fashion-MNIST CNN and save it into the BentoML store."""

from __future__ import annotations

import torch

from tiffin.families import fashion
from train import datasets
from train.card import Usage
from train.common import Heldout, Reference, Run, parse

ARCH = {"channels": 32, "hidden": 128, "dropout": 0.3}
OPTIM = {"lr": 3e-3, "batch_size": 128, "weight_decay": 1e-4}
USAGE = Usage(
    "Sorting 28x28 grey-scale product photos of garments into the ten Fashion-MNIST classes.",
    [
        "Trained on centred, grey, 28x28 Zalando catalogue photos on a black background: a photo of a worn garment, "
        "a busy background or a dark garment on white drops accuracy (serving inverts light backgrounds, nothing more).",
        "Shirt, T-shirt/top, pullover and coat are confused most (see the confusion matrix).",
    ],
)


def main() -> str:
    run = Run(parse(__doc__, epochs=8), datasets.fashion_mnist())
    x, y = run.training_rows(6000)
    model = fashion.FashionCNN(ARCH["channels"], ARCH["hidden"], dropout=ARCH["dropout"])
    data = run.data
    x_test = fashion.normalise(data.x_test)
    heldout = Heldout(fashion.normalise(data.x_val), torch.as_tensor(data.y_val), x_test, torch.as_tensor(data.y_test))
    config = {"channels": ARCH["channels"], "hidden": ARCH["hidden"], "classes": fashion.CLASSES, "side": fashion.SIDE}
    config |= {"mean": fashion.MEAN, "std": fashion.STD}
    return run.fit_and_save(
        fashion.FAMILY,
        model,
        fashion.normalise(x),
        torch.as_tensor(y),
        heldout,
        params=ARCH | OPTIM,
        config=config,
        title="Fashion-MNIST CNN",
        usage=USAGE,
        classes=fashion.CLASSES,
        reference=Reference(data.x_test, x_test, fashion.CLASSES),
    )


if __name__ == "__main__":
    main()
