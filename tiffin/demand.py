"""Bike-share demand: feature encoding (one definition) and the MLP.

The model predicts `bikers` from calendar and weather columns only: `casual` and
`registered` add up to the target and are never inputs. `day` (day of the year) is
left out too: with one year of data it only lets the model memorise dates.
The target is learned as log1p(bikers) because counts are skewed; predictions are
mapped back with expm1.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"]
WEATHER = ["clear", "cloudy/misty", "light rain/snow", "heavy rain/snow"]
CATEGORICAL = {
    "season": [1, 2, 3, 4],
    "mnth": MONTHS,
    "hr": list(range(24)),
    "weekday": list(range(7)),
    "weathersit": WEATHER,
}
BINARY = ["holiday", "workingday"]
NUMERIC = ["temp", "atemp", "hum", "windspeed"]
FEATURES = list(CATEGORICAL) + BINARY + NUMERIC


class FeatureEncoder:
    """Rows of raw Bikeshare columns -> float32 matrix: one-hot categoricals, 0/1 flags,
    standardised numerics (mean/std fitted on the training split and saved with the model)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self._index = {name: {v: i for i, v in enumerate(values)} for name, values in CATEGORICAL.items()}

    @classmethod
    def fit(cls, rows: Mapping[str, Sequence]) -> "FeatureEncoder":
        numeric = np.stack([np.asarray(rows[c], dtype=np.float32) for c in NUMERIC], axis=1)
        return cls(numeric.mean(0), numeric.std(0) + 1e-6)

    @property
    def width(self) -> int:
        return sum(len(v) for v in CATEGORICAL.values()) + len(BINARY) + len(NUMERIC)

    def encode(self, rows: Mapping[str, Sequence]) -> np.ndarray:
        """`rows` maps column name -> values (a DataFrame works, as does a dict of lists)."""
        n = len(rows[NUMERIC[0]])
        parts = []
        for name, values in CATEGORICAL.items():
            onehot = np.zeros((n, len(values)), dtype=np.float32)
            index = self._index[name]
            for i, v in enumerate(rows[name]):
                key = int(v) if name != "mnth" and name != "weathersit" else v
                if key not in index:
                    raise ValueError(f"{name}={v!r} is not one of {values}")
                onehot[i, index[key]] = 1.0
            parts.append(onehot)
        parts.append(np.stack([np.asarray(rows[c], dtype=np.float32) for c in BINARY], axis=1))
        numeric = np.stack([np.asarray(rows[c], dtype=np.float32) for c in NUMERIC], axis=1)
        parts.append((numeric - self.mean) / self.std)
        return np.concatenate(parts, axis=1)

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "features": FEATURES}

    @classmethod
    def from_json(cls, data: dict) -> "FeatureEncoder":
        return cls(data["mean"], data["std"])


class DemandMLP(nn.Module):
    def __init__(self, inputs: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def to_counts(log_pred: torch.Tensor) -> torch.Tensor:
    return torch.expm1(log_pred).clamp(min=0.0)
