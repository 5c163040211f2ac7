"""Train the bike-share demand MLP (ISLP Bikeshare) and save it. Target: log1p(bikers)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tiffin.families import bikeshare
from train import datasets
from train.card import Usage
from train.common import Heldout, Reference, Run, parse

ARCH = {"hidden": 128, "dropout": 0.1, "target": "log1p(bikers)"}
OPTIM = {"lr": 3e-3, "batch_size": 128, "weight_decay": 1e-4}


USAGE = Usage(
    "Forecasting hourly bike-share rentals (riders an hour) from calendar and weather features, for capacity planning.",
    [
        "Trained on 2011 hourly rows of Washington D.C.'s Capital Bikeshare (ISLP): other cities, years after a "
        "change in the fleet or the city, and weather outside the training range extrapolate.",
        "The split is random over hours, so neighbouring hours of one day fall on both sides: a forecast for a "
        "new season is likely less accurate than the test figure.",
    ],
)


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(1 - ((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


# The model predicts log1p(bikers); it is scored on counts.
SCORES = {
    "r2": lambda out, y: r2_score(bikeshare.to_counts(out), torch.expm1(y)),
    "mae": lambda out, y: float((bikeshare.to_counts(out) - torch.expm1(y)).abs().mean()),
}


def main() -> str:
    run = Run(parse(__doc__, epochs=60), datasets.bikeshare())
    rows, y = run.training_rows(2000)
    encoder = bikeshare.FeatureEncoder.fit(rows)
    data = run.data
    x_test = torch.as_tensor(encoder.encode(data.x_test))
    heldout = Heldout(
        torch.as_tensor(encoder.encode(data.x_val)),
        torch.log1p(torch.as_tensor(data.y_val)),
        x_test,
        torch.log1p(torch.as_tensor(data.y_test)),
    )
    model = bikeshare.DemandMLP(encoder.width, ARCH["hidden"], ARCH["dropout"])

    config = {"inputs": encoder.width, "hidden": ARCH["hidden"], "encoder": encoder.to_json()}
    return run.fit_and_save(
        bikeshare.FAMILY,
        model,
        torch.as_tensor(encoder.encode(rows)),
        torch.log1p(torch.as_tensor(y)),
        heldout,
        params=ARCH | OPTIM,
        config=config,
        title="Bikeshare demand MLP",
        usage=USAGE,
        scores=SCORES,
        loss=F.mse_loss,
        reference=Reference(
            {c: data.x_test[c] for c in bikeshare.FEATURES}, x_test, answer=lambda out: bikeshare.to_counts(out).numpy()
        ),
    )


if __name__ == "__main__":
    main()
