"""What every training script shares: its command line, and one call that trains a model,
plots its curve, saves it into the store with its metadata, and reports."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from tiffin import store
from tiffin.config import settings
from tiffin.families import Family
from train import loop
from train.datasets import Split


def parse(description: str, epochs: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small subset and 1 epoch, for tests")
    parser.add_argument("--epochs", type=int, default=None, help=f"default {epochs} (1 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 1 if args.quick else epochs
    torch.manual_seed(args.seed)
    # Two cores here: more intra-op threads than cores only adds contention.
    torch.set_num_threads(settings().train_threads or os.cpu_count() or 1)
    return args


def classifier_metrics(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], dict[str, float]]:
    """Held-out loss and accuracy of a classifier that outputs logits."""

    def evaluate() -> dict[str, float]:
        logits = loop.predict_in_batches(model, x)
        return {"test_loss": float(F.cross_entropy(logits, y)), "test_accuracy": float((logits.argmax(1) == y).float().mean())}

    return evaluate


def train_and_save(
    family: Family,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    evaluate: Callable[[], dict[str, float]],
    reported: tuple[str, ...],
    args: argparse.Namespace,
    params: dict[str, Any],
    data: Split,
    config: dict[str, Any],
    title: str,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    seconds_before: float = 0.0,
    **save: Any,
) -> str:
    """Fit `model` on (x, y) with `params` (lr, batch_size, weight_decay), save it as a new
    version of `family` with its `reported` metrics and learning curve, and return its tag.
    `seconds_before`: preparation time that counts as training (e.g. frozen embeddings)."""
    steps = (len(y) + params["batch_size"] - 1) // params["batch_size"]
    start = time.perf_counter()
    history = loop.fit(
        model,
        loop.shuffled(x, y, params["batch_size"], args.seed),
        steps,
        loss,
        evaluate,
        epochs=args.epochs,
        lr=params["lr"],
        weight_decay=params["weight_decay"],
        description=family.name,
    )
    seconds = seconds_before + time.perf_counter() - start
    metrics = {k: history[-1][k] for k in reported}
    curve = loop.plot_curve(history, Path(tempfile.mkdtemp(prefix=f"tiffin-{family.name}-")) / store.CURVE, title)
    tag = store.save(
        family,
        model,
        {"arch": family.arch, **config},
        metrics=metrics,
        dataset=data.name,
        fingerprint=data.fingerprint,
        params=params,
        seconds=seconds,
        curve=curve,
        **save,
    )
    print(f"saved {tag}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
    return tag
