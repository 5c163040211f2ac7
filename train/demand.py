"""Train the bike-share demand MLP (ISLP Bikeshare) and save it."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tiffin import store
from tiffin.families import bikeshare
from train import datasets
from train import loop
from train.common import Timer, curve_path, parse, report


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(1 - ((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def main() -> str:
    args = parse(__doc__, epochs=60)
    data = datasets.bikeshare()
    rows, y_train = data.x_train, data.y_train
    if args.quick:
        rows, y_train = rows.iloc[:2000], y_train[:2000]
    params = {"hidden": 128, "dropout": 0.1, "epochs": args.epochs, "lr": 3e-3, "batch_size": 128,
              "weight_decay": 1e-4, "target": "log1p(bikers)", "train_rows": len(y_train), "seed": args.seed}
    encoder = bikeshare.FeatureEncoder.fit(rows)
    xtr = torch.as_tensor(encoder.encode(rows))
    ytr = torch.log1p(torch.as_tensor(y_train))
    xte = torch.as_tensor(encoder.encode(data.x_test))
    yte = torch.as_tensor(data.y_test)
    model = bikeshare.DemandMLP(encoder.width, params["hidden"], params["dropout"])

    def evaluate() -> dict[str, float]:
        pred = bikeshare.to_counts(loop.predict_in_batches(model, xte))
        return {"test_r2": r2_score(pred, yte), "test_mae": float((pred - yte).abs().mean())}

    steps = (len(ytr) + params["batch_size"] - 1) // params["batch_size"]
    with Timer() as timer:
        history = loop.fit(
            model, loop.shuffled(xtr, ytr, params["batch_size"], args.seed), steps, F.mse_loss, evaluate,
            epochs=args.epochs, lr=params["lr"], weight_decay=params["weight_decay"], description="bikeshare-mlp",
        )
    metrics = {k: history[-1][k] for k in ("test_r2", "test_mae")}
    config = {"arch": bikeshare.FAMILY.arch, "inputs": encoder.width, "hidden": params["hidden"], "encoder": encoder.to_json()}
    curve = loop.plot_curve(history, curve_path("demand"), "Bikeshare demand MLP")
    tag = store.save(bikeshare.FAMILY, model, config, metrics=metrics, dataset=data.name, fingerprint=data.fingerprint,
                     params=params, seconds=timer.seconds, curve=curve)
    report(tag, metrics)
    return tag


if __name__ == "__main__":
    main()
