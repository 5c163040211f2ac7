"""Train the bike-share demand MLP (ISLP Bikeshare) and save it. Target: log1p(bikers)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tiffin.families import bikeshare
from train import datasets, loop
from train.common import parse, train_and_save


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(1 - ((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def main() -> str:
    args = parse(__doc__, epochs=60)
    data = datasets.bikeshare()
    rows, y_train = data.x_train, data.y_train
    if args.quick:
        rows, y_train = rows.iloc[:2000], y_train[:2000]
    params = {
        "hidden": 128,
        "dropout": 0.1,
        "epochs": args.epochs,
        "lr": 3e-3,
        "batch_size": 128,
        "weight_decay": 1e-4,
        "target": "log1p(bikers)",
        "train_rows": len(y_train),
        "seed": args.seed,
    }
    encoder = bikeshare.FeatureEncoder.fit(rows)
    xte, yte = torch.as_tensor(encoder.encode(data.x_test)), torch.as_tensor(data.y_test)
    model = bikeshare.DemandMLP(encoder.width, params["hidden"], params["dropout"])

    def evaluate() -> dict[str, float]:
        pred = bikeshare.to_counts(loop.predict_in_batches(model, xte))
        return {"test_r2": r2_score(pred, yte), "test_mae": float((pred - yte).abs().mean())}

    config = {"inputs": encoder.width, "hidden": params["hidden"], "encoder": encoder.to_json()}
    return train_and_save(
        bikeshare.FAMILY,
        model,
        torch.as_tensor(encoder.encode(rows)),
        torch.log1p(torch.as_tensor(y_train)),
        evaluate=evaluate,
        reported=("test_r2", "test_mae"),
        args=args,
        params=params,
        data=data,
        config=config,
        title="Bikeshare demand MLP",
        loss=F.mse_loss,
    )


if __name__ == "__main__":
    main()
