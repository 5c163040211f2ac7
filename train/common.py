"""What every training script shares: its command line, and one call that trains a model,
plots its curve, saves it into the store with its metadata, and reports."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from tiffin import store
from tiffin.config import settings
from tiffin.families import Family, drift_features
from train import loop
from train.datasets import Split


def parse(description: str, epochs: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small subset and 1 epoch, for tests")
    parser.add_argument("--epochs", type=int, default=None, help=f"default {epochs} (1 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shuffle-labels",
        action="store_true",
        help="train on shuffled labels: a deliberately bad version, to try the promotion gate and canary rollback",
    )
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


@dataclass
class Reference:
    """What a version's drift reference is made of (tiffin/families/drift_features.py): held-out
    items as a request carries them, and the same items encoded as the model takes them. Held
    out, as live inputs are unseen: a vocabulary covers its own training texts better than new
    ones, and a model answers them better."""

    raw: Any  # images uint8 (N, ...), texts, or a mapping of the model's input columns
    x: torch.Tensor  # the model's input for the same items
    classes: Sequence[str] = ()  # a classifier's names, in output order; () for a regressor
    vocab: Any = None  # a text model's word vocabulary, for the coverage summary
    answer: Callable[[torch.Tensor], np.ndarray] | None = None  # the model's output -> the served answer


def drift_reference(family: Family, model: torch.nn.Module, ref: Reference) -> dict[str, Any]:
    """Summaries of the first half of the held-out items (at most REFERENCE_ITEMS; the rest
    stay unseen, for tests of the monitor) and the fitted model's answers to them."""
    k = min(drift_features.REFERENCE_ITEMS, len(ref.x) // 2)
    if isinstance(ref.raw, Mapping):
        items: Any = {name: np.asarray(values)[:k].tolist() for name, values in ref.raw.items()}
    else:
        items = ref.raw[:k]
    model.eval()
    with torch.inference_mode():
        out = loop.predict_in_batches(model, ref.x[:k])
    answer = ref.answer(out) if ref.answer else out.softmax(1).numpy()
    features = drift_features.of_inputs(family.kind, items, ref.vocab) | drift_features.of_answers(answer, ref.classes)
    return {"drift": drift_features.reference(features)}


@dataclass
class Run:
    """One training run: its command line and its data set."""

    args: argparse.Namespace
    data: Split

    def training_rows(self, quick_rows: int) -> tuple[Any, Any]:
        """The training split; its first `quick_rows` rows with --quick."""
        x, y = self.data.x_train, self.data.y_train
        if self.args.quick:
            x, y = x[:quick_rows], y[:quick_rows]
        if self.args.shuffle_labels:  # each input keeps a label, just not its own
            y = np.random.default_rng(self.args.seed).permutation(y)
        return x, y

    def fit_and_save(
        self,
        family: Family,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        evaluate: Callable[[], dict[str, float]],
        *,
        params: dict[str, Any],
        config: dict[str, Any],
        title: str,
        loss: Callable = F.cross_entropy,
        seconds_before: float = 0.0,
        after_fit: Callable[[], dict[str, Any]] | None = None,
        reference: Reference | None = None,
        **save: Any,
    ) -> str:
        """Fit `model` on (x, y) with `params` (its hyper-parameters, lr, batch_size and
        weight_decay among them), save it as a new version of `family` with the metrics
        `evaluate` reports after the last epoch and its learning curve, and return its tag.
        `seconds_before`: preparation time that counts as training (e.g. frozen embeddings);
        `after_fit`: more config entries, worked out from the fitted model; `reference`: the
        held-out items the drift reference is made of."""
        args, batch = self.args, params["batch_size"]
        params = {
            **params,
            "epochs": args.epochs,
            "train_rows": len(y),
            "seed": args.seed,
            **({"shuffled_labels": True} if args.shuffle_labels else {}),
        }
        start = time.perf_counter()
        history = loop.fit(
            model,
            loop.shuffled(x, y, batch, args.seed),
            (len(y) + batch - 1) // batch,
            loss,
            evaluate,
            epochs=args.epochs,
            lr=params["lr"],
            weight_decay=params["weight_decay"],
            description=family.name,
        )
        seconds = seconds_before + time.perf_counter() - start
        metrics = {k: v for k, v in history[-1].items() if k not in ("epoch", "train_loss")}
        extra = after_fit() if after_fit else {}
        if reference is not None:
            extra |= drift_reference(family, model, reference)
        curve = loop.plot_curve(history, Path(tempfile.mkdtemp(prefix=f"tiffin-{family.name}-")) / store.CURVE, title)
        tag = store.save(
            family,
            model,
            {"arch": family.arch, **config, **extra},
            metrics=metrics,
            dataset=self.data.name,
            fingerprint=self.data.fingerprint,
            params=params,
            seconds=seconds,
            curve=curve,
            **save,
        )
        print(f"saved {tag}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
        return tag
