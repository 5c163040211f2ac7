"""Train the bike-share demand MLP (ISLP Bikeshare) and save it. Target: log1p(bikers)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tiffin.families import bikeshare
from train import datasets, loop
from train.common import Reference, Run, parse

ARCH = {"hidden": 128, "dropout": 0.1, "target": "log1p(bikers)"}
OPTIM = {"lr": 3e-3, "batch_size": 128, "weight_decay": 1e-4}


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(1 - ((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def main() -> str:
    run = Run(parse(__doc__, epochs=60), datasets.bikeshare())
    rows, y = run.training_rows(2000)
    encoder = bikeshare.FeatureEncoder.fit(rows)
    x_test, y_test = torch.as_tensor(encoder.encode(run.data.x_test)), torch.as_tensor(run.data.y_test)
    model = bikeshare.DemandMLP(encoder.width, ARCH["hidden"], ARCH["dropout"])

    def test() -> dict[str, float]:
        pred = bikeshare.to_counts(loop.predict_in_batches(model, x_test))
        return {"test_r2": r2_score(pred, y_test), "test_mae": float((pred - y_test).abs().mean())}

    config = {"inputs": encoder.width, "hidden": ARCH["hidden"], "encoder": encoder.to_json()}
    return run.fit_and_save(
        bikeshare.FAMILY,
        model,
        torch.as_tensor(encoder.encode(rows)),
        torch.log1p(torch.as_tensor(y)),
        test,
        params=ARCH | OPTIM,
        config=config,
        title="Bikeshare demand MLP",
        loss=F.mse_loss,
        reference=Reference(
            {c: run.data.x_test[c] for c in bikeshare.FEATURES}, x_test, answer=lambda out: bikeshare.to_counts(out).numpy()
        ),
    )


if __name__ == "__main__":
    main()
