"""The model store: how a model version is written to it and read from it.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from tiffin import config


class Named(Protocol):
    """What the store needs of a model family (a tiffin.families.Family): its name and labels."""

    name: str
    labels: dict[str, str]


WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
CURVE = "learning_curve.png"
CARD = "model_card.md"


def code_version() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tiffin", "train"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        from tiffin import __version__

        return __version__


def save(
    family: Named,
    module: torch.nn.Module,
    config: dict[str, Any],
    *,
    metrics: dict[str, float],
    dataset: str,
    fingerprint: str,
    params: dict[str, Any],
    seconds: float,
    files: dict[str, Path] | None = None,
    card: Callable[[str], str] | None = None,
    copy_dirs: dict[str, Path] | None = None,
) -> str:
    """Write a new version of `family` into the store and return its tag. `files`: name ->
    file copied beside the weights (its learning curve, figures); `card(tag)`: its model card."""
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
    with bentoml.models.create(family.name, labels=family.labels, metadata=metadata) as model:
        path = Path(model.path)
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(path / WEIGHTS))
        (path / CONFIG).write_text(json.dumps(config, indent=1))
        for name, source in (files or {}).items():
            shutil.copy(source, path / name)
        if card is not None:
            (path / CARD).write_text(card(str(model.tag)))
        for name, source in (copy_dirs or {}).items():
            shutil.copytree(source, path / name)
    return str(model.tag)


@dataclass
class Loaded:
    tag: str
    path: Path
    config: dict[str, Any]
    metadata: dict[str, Any]


def open_model(tag: str) -> Loaded:
    import bentoml

    model = bentoml.models.get(tag)
    path = Path(model.path)
    return Loaded(str(model.tag), path, json.loads((path / CONFIG).read_text()), dict(model.info.metadata))


def linked_home(source: Path, home: Path) -> Path:
    """A BENTOML_HOME at `home` holding `source`'s models as hard links (no copy of the
    weights), each `latest` pointer its own file, as saving a version rewrites it: versions
    saved or aliases moved there never change what `source` serves (tests, the bench)."""
    shutil.copytree(Path(source) / "models", Path(home) / "models", copy_function=os.link)
    for pointer in (Path(home) / "models").glob("*/latest"):
        text = pointer.read_text()
        pointer.unlink()
        pointer.write_text(text)
    return Path(home)


def weights_bytes(tag: str) -> int:
    """The size of a stored model's weights file; 0 when the model is not in the store."""
    import bentoml

    try:
        return (Path(bentoml.models.get(tag).path) / WEIGHTS).stat().st_size
    except (bentoml.exceptions.NotFound, FileNotFoundError):
        return 0


def load_weights(module: torch.nn.Module, model_dir: Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(Path(model_dir) / WEIGHTS), device=str(device)))
    return module.to(device).eval()


def pick_device() -> torch.device:
    """CUDA when present, else CPU; TIFFIN_DEVICE overrides (e.g. 'cpu' on a GPU box)."""
    wanted = config.settings().device
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
