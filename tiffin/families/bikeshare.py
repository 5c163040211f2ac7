"""Bike-share demand: feature encoding (one definition), the MLP, its predictor and OIP signature.

The model predicts `bikers` from calendar and weather columns only: `casual` and
`registered` add up to the target and are never inputs. `day` (day of the year) is
left out too: with one year of data it only lets the model memorise dates.
The target is learned as log1p(bikers) because counts are skewed; predictions are
mapped back with expm1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from tiffin import store
from tiffin.families import frozen
from tiffin.families.base import Family, Predictor
from tiffin.families.signature import OIPError, Signature, TensorSpec, items
from tiffin.wire import catalog
from tiffin.wire.catalog import MONTHS, WEATHER
from tiffin.wire.schemas import DemandFeatures

CATEGORICAL = {"season": [1, 2, 3, 4], "mnth": MONTHS, "hr": list(range(24)), "weekday": list(range(7)), "weathersit": WEATHER}
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
    def fit(cls, rows: Mapping[str, Sequence]) -> FeatureEncoder:
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
    def from_json(cls, data: dict) -> FeatureEncoder:
        return cls(data["mean"], data["std"])


class DemandMLP(nn.Module):
    def __init__(self, inputs: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def to_counts(log_pred: torch.Tensor) -> torch.Tensor:
    return torch.expm1(log_pred).clamp(min=0.0)


class DemandPredictor(Predictor):
    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        super().__init__(model_dir, config, device)
        self.encoder = FeatureEncoder.from_json(config["encoder"])
        self.model = store.load_weights(DemandMLP(config["inputs"], config["hidden"]), model_dir, device)
        rng = torch.Generator().manual_seed(0)
        examples = [torch.randn((n, config["inputs"]), generator=rng) for n in (2, 1, 3)]
        self.run = frozen.fastest(device, self.forward, self.model, examples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_counts(self.model(x)).float()

    @torch.inference_mode()
    def __call__(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        columns = {name: [row[name] for row in rows] for name in FEATURES}
        x = torch.as_tensor(self.encoder.encode(columns)).to(self.device)
        return self.run(x).cpu().numpy()

    def warmup(self) -> None:
        self([catalog.EXAMPLE_DEMAND_ROW] * 4)


def oip_rows(inputs: dict[str, np.ndarray]) -> list[dict]:
    """One OIP tensor [N] per column -> N rows, each checked as the typed route checks it."""
    columns = {name: items(inputs[name], name) for name in FEATURES}
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise OIPError(f"every demand input needs the same number of items, got sizes {sorted(sizes)}")
    rows = []
    for i in range(sizes.pop()):
        row = {k: (v[i].decode() if isinstance(v[i], bytes) else v[i].item()) for k, v in columns.items()}
        try:
            rows.append(DemandFeatures(**row).model_dump())
        except ValidationError as exc:
            err = exc.errors()[0]
            raise OIPError(f"item {i}, input {err['loc'][0]}: {err['msg']}") from None
    return rows


def oip_bikers(answers: list[dict]) -> dict[str, np.ndarray]:
    return {"bikers": np.array([a["bikers"] for a in answers], dtype=np.float32)}


FAMILY = Family(
    catalog.DEMAND,
    "DemandMLP",
    DemandPredictor,
    "tabular",
    "regression",
    setting="demand_model",
    train="train.demand",
    metric="test_r2",
    metric_tolerance=0.01,
    signature=Signature(
        [TensorSpec(n, catalog.DEMAND_DATATYPES[n], [-1]) for n in FEATURES],
        [TensorSpec("bikers", "FP32", [-1])],
        oip_rows,
        oip_bikers,
        method="predict",
    ),
    max_batch=256,  # microseconds per row: large batches cost nothing
)
FAMILIES = (FAMILY,)
