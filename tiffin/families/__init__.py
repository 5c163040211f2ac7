"""The one registry of model families. Each module here declares `FAMILIES`, its `Family`
objects; the store labels, predictors, OIP table and training entry points all derive
from this registry. A new family is a new module here: nothing else lists it.

    from tiffin import families
    stored, predictor = families.load("fashion-cnn:latest")
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

import torch

from tiffin import store
from tiffin.families.base import Family, Predictor


def _discover() -> tuple[Family, ...]:
    found: list[Family] = []
    for module in pkgutil.iter_modules(__path__):
        found += getattr(importlib.import_module(f"{__name__}.{module.name}"), "FAMILIES", ())
    return tuple(found)


ALL = _discover()
BY_NAME = {f.name: f for f in ALL}
BY_ARCH = {f.arch: f for f in ALL}
TRAINED = tuple(f for f in ALL if f.train)  # what `python -m train.all` trains


def build(model_dir: Path, config: dict[str, Any], device: torch.device) -> Predictor:
    """The predictor for a model-store directory, warmed up."""
    try:
        family = BY_ARCH[config["arch"]]
    except KeyError:
        raise ValueError(f"stored model has arch {config.get('arch')!r}; known: {', '.join(BY_ARCH)}") from None
    predictor = family.predictor(Path(model_dir), config, device)
    predictor.warmup()
    return predictor


def load(family_or_tag: Family | str, device: torch.device | None = None) -> tuple[store.Loaded, Predictor]:
    """Open a model from the store and build its predictor."""
    loaded = store.open_model(family_or_tag.tag if isinstance(family_or_tag, Family) else family_or_tag)
    return loaded, build(loaded.path, loaded.config, device or store.pick_device())


__all__ = ["ALL", "BY_ARCH", "BY_NAME", "TRAINED", "Family", "Predictor", "build", "load"]
