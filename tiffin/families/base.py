"""What every model family module declares: a `Family` (its store name, the `arch` its
training writes into the model's config, its predictor, its OIP signature, its training
entry point) and a `Predictor` (a loaded model that runs whole batches)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tiffin import config

if TYPE_CHECKING:
    from tiffin.families.signature import Signature


class Predictor:
    """Built from a model-store directory (weights + config written by `tiffin.store.save`);
    takes a whole batch, so the serving batcher decides the batch and the predictor runs it."""

    config: dict[str, Any]
    device: torch.device
    # Building one changes torch's process-wide state for a moment (torch.fx tracing, CUDA graph
    # capture): a version swap builds it with every batcher paused (tiffin/runtime/batcher.paused).
    builds_alone: bool = False

    def __init__(self, model_dir: Path, config: dict[str, Any], device: torch.device):
        self.config, self.device = config, device

    @property
    def classes(self) -> list[str]:
        """The class names of a classifier, in output order."""
        raise NotImplementedError

    def warmup(self) -> None:
        """Run a representative batch once so the first real request pays no lazy-init cost."""
        raise NotImplementedError


def tempered(net: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
    """`net` with its last Linear layer (the logits) divided by the temperature its training
    fitted on validation data (config "temperature"; 1 when absent), so that a softmax over
    its output gives calibrated probabilities at no cost per request."""
    t = float(config.get("temperature", 1.0))
    if t != 1.0:
        last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.div_(t)
            if last.bias is not None:
                last.bias.div_(t)
    return net


@dataclass(frozen=True)
class Family:
    name: str  # model-store name; also the OIP model name
    arch: str  # config["arch"] of the stored model: how a stored version finds its predictor
    predictor: type[Predictor]
    kind: str  # the store labels: family=kind, task, tier
    task: str
    tier: str = ""
    setting: str = ""  # the field of tiffin.config.Settings that names the tag to serve
    train: str = ""  # `python -m <train>` trains it; "" for models made elsewhere (bench/)
    signature: Signature | None = None  # how it is called over the OIP; None: not served there
    # The most items one forward pass takes when served: where the model's throughput stops
    # growing on our 2 CPU cores (`make bench`), so larger batches would only add latency.
    max_batch: int = 64

    # The held-out metric a promotion compares (store metadata "metrics"), higher is better,
    # and by how much a candidate may trail the version it replaces (0.005: half a point).
    metric: str = "test_accuracy"
    metric_tolerance: float = 0.005

    @property
    def tag(self) -> str:
        """The tag a service loads: the setting where set (NAME:VERSION or NAME@ALIAS), else the
        version NAME@production names in the alias book, else the newest version."""
        from tiffin import versions

        return versions.resolve(self)

    @property
    def wanted(self) -> str | None:
        """The setting's value, when set."""
        return getattr(config.settings(), self.setting) if self.setting else None

    @property
    def env(self) -> str:
        return config.env_name(self.setting)

    @property
    def labels(self) -> dict[str, str]:
        labels = {"family": self.kind, "task": self.task, "project": "tiffin"}
        if self.tier:
            labels["tier"] = self.tier
        return labels
