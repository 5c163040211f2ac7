"""The model store: names, tags, and how a model is written to and read from it.

Artifacts are safetensors weights plus JSON configs. Nothing is pickled, so loading a
model from a bento someone else built cannot run arbitrary code (torch.load would
unpickle; safetensors is plain tensors).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
CURVE = "learning_curve.png"


@dataclass(frozen=True)
class ModelSpec:
    name: str       # model-store name
    env: str        # environment variable that overrides the tag to serve
    family: str
    task: str
    tier: str = ""

    @property
    def tag(self) -> str:
        """The tag a service loads: $ENV if set, else the newest version."""
        return os.environ.get(self.env) or f"{self.name}:latest"

    @property
    def labels(self) -> dict[str, str]:
        labels = {"family": self.family, "task": self.task, "project": "tiffin"}
        if self.tier:
            labels["tier"] = self.tier
        return labels


IMAGE = ModelSpec("fashion-cnn", "TIFFIN_IMAGE_MODEL", "image", "classification")
TEXT_SMALL = ModelSpec("review-textcnn", "TIFFIN_TEXT_SMALL_MODEL", "text", "sentiment", "small")
TEXT_LARGE = ModelSpec("review-minilm", "TIFFIN_TEXT_LARGE_MODEL", "text", "sentiment", "large")
DEMAND = ModelSpec("bikeshare-mlp", "TIFFIN_DEMAND_MODEL", "tabular", "regression")
ALL = (IMAGE, TEXT_SMALL, TEXT_LARGE, DEMAND)
# Random weights, for `make bench` only (tiffin/benchmodels.py); served via TIFFIN_IMAGE_MODEL.
BENCH_RESNET50 = ModelSpec("bench-resnet50", "TIFFIN_BENCH_MODEL", "image", "benchmark")
BENCH_PROBE = ModelSpec("bench-probe", "TIFFIN_BENCH_MODEL", "image", "benchmark")


def code_version() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tiffin", "train"], cwd=root, capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        from tiffin import __version__

        return __version__


def save(
    spec: ModelSpec,
    module: torch.nn.Module,
    config: dict[str, Any],
    *,
    metrics: dict[str, float],
    dataset: str,
    fingerprint: str,
    params: dict[str, Any],
    seconds: float,
    curve: Path | None = None,
    copy_dirs: dict[str, Path] | None = None,
) -> str:
    """Write a new version of `spec` into the store and return its tag."""
    import bentoml
    from safetensors.torch import save_file

    metadata = {
        "metrics": {k: round(float(v), 5) for k, v in metrics.items()},
        "dataset": dataset,
        "dataset_sha256": fingerprint,
        "params": params,
        "code_version": code_version(),
        "training_seconds": round(seconds, 1),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": str(torch.__version__),
    }
    with bentoml.models.create(spec.name, labels=spec.labels, metadata=metadata) as model:
        path = Path(model.path)
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(path / WEIGHTS))
        (path / CONFIG).write_text(json.dumps(config, indent=1))
        if curve is not None:
            shutil.copy(curve, path / CURVE)
        for name, source in (copy_dirs or {}).items():
            shutil.copytree(source, path / name)
    return str(model.tag)


@dataclass
class Loaded:
    tag: str
    path: Path
    config: dict[str, Any]
    metadata: dict[str, Any]


def open_model(spec_or_tag: ModelSpec | str) -> Loaded:
    import bentoml

    tag = spec_or_tag.tag if isinstance(spec_or_tag, ModelSpec) else spec_or_tag
    model = bentoml.models.get(tag)
    path = Path(model.path)
    return Loaded(str(model.tag), path, json.loads((path / CONFIG).read_text()), dict(model.info.metadata))


def weights_bytes(spec: ModelSpec) -> int:
    """The size of a stored model's weights file; 0 when the model is not in the store."""
    import bentoml

    try:
        return (Path(bentoml.models.get(spec.tag).path) / WEIGHTS).stat().st_size
    except (bentoml.exceptions.NotFound, FileNotFoundError):
        return 0


def load_weights(module: torch.nn.Module, model_dir: Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(Path(model_dir) / WEIGHTS), device=str(device)))
    return module.to(device).eval()


def pick_device() -> torch.device:
    """CUDA when present, else CPU; TIFFIN_DEVICE overrides (e.g. 'cpu' on a GPU box)."""
    wanted = os.environ.get("TIFFIN_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
