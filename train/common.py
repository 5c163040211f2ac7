"""What every training script shares: its command line, and one call that trains a model,
plots its curve, saves it into the store with its metadata, and reports."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from tiffin import store
from tiffin.config import settings
from tiffin.families import Family, drift_features
from train import calibration, loop
from train.card import Card, Usage, interval
from train.datasets import Split

CALIBRATION_PNG, CONFUSION_PNG = "calibration.png", "confusion_matrix.png"


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


Scores = Mapping[str, Callable[[torch.Tensor, torch.Tensor], float]]  # name -> fn(model output, target)

CLASSIFICATION: Scores = {
    "loss": lambda logits, y: float(F.cross_entropy(logits, y)),
    "accuracy": lambda logits, y: float((logits.argmax(1) == y).float().mean()),
}


@dataclass
class Heldout:
    """A run's validation and test rows as the model takes them, with their targets; `domains`:
    out-of-domain sets (name -> (x, y, the data's sha256)) scored once, after training, for the
    model card."""

    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    domains: Mapping[str, tuple[torch.Tensor, torch.Tensor, str]] = field(default_factory=dict)


def scored(scores: Scores, out: torch.Tensor, y: torch.Tensor, prefix: str) -> dict[str, float]:
    return {f"{prefix}_{name}": fn(out, y) for name, fn in scores.items()}


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


def drift_reference(family: Family, model: torch.nn.Module, ref: Reference, temperature: float = 1.0) -> dict[str, Any]:
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
    answer = ref.answer(out) if ref.answer else (out / temperature).softmax(1).numpy()
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
        heldout: Heldout,
        *,
        params: dict[str, Any],
        config: dict[str, Any],
        title: str,
        usage: Usage,
        scores: Scores = CLASSIFICATION,
        classes: Sequence[str] = (),
        loss: Callable = F.cross_entropy,
        seconds_before: float = 0.0,
        after_fit: Callable[[torch.Tensor], dict[str, Any]] | None = None,
        reference: Reference | None = None,
        figures: Mapping[str, Path] | None = None,
        **save: Any,
    ) -> str:
        """Fit `model` on (x, y) with `params` (its hyper-parameters, lr, batch_size and
        weight_decay among them), keep the epoch that scores best on the validation rows by the
        family's metric, and save it as a new version of `family` with the test scores (read
        once, here), their intervals, its learning curve and its model card. A classifier
        (`classes` given) also gets a temperature fitted on the validation rows, stored in its
        config and applied when serving. `seconds_before`: preparation time that counts as
        training (e.g. tuning the encoder that made x); `after_fit(validation_output)`: more
        config entries worked out from the fitted model's (calibrated) validation answers; `reference`: the
        held-out items the drift reference is made of; `figures`: more PNGs for the card (name ->
        file), e.g. an earlier training stage's curve."""
        args, batch = self.args, params["batch_size"]
        params = {
            **params,
            "epochs": args.epochs,
            "train_rows": len(y),
            "seed": args.seed,
            **({"shuffled_labels": True} if args.shuffle_labels else {}),
        }

        def validate() -> dict[str, float]:
            return scored(scores, loop.predict_in_batches(model, heldout.x_val), heldout.y_val, "val")

        start = time.perf_counter()
        history = loop.fit(
            model,
            loop.shuffled(x, y, batch, args.seed),
            (len(y) + batch - 1) // batch,
            loss,
            validate,
            epochs=args.epochs,
            lr=params["lr"],
            weight_decay=params["weight_decay"],
            description=family.name,
            select=family.metric.replace("test_", "val_", 1),
        )
        seconds = seconds_before + time.perf_counter() - start
        model.eval()
        out_val = loop.predict_in_batches(model, heldout.x_val)
        out_test = loop.predict_in_batches(model, heldout.x_test)
        metrics = scored(scores, out_test, heldout.y_test, "test")
        intervals = {f"test_{n}": interval(fn, out_test, heldout.y_test) for n, fn in scores.items() if n != "loss"}
        extra: dict[str, Any] = {}
        work = Path(tempfile.mkdtemp(prefix=f"tiffin-{family.name}-"))
        files = {store.CURVE: loop.plot_curve(history, work / store.CURVE, title), **(figures or {})}
        temperature = ece = None
        domains = []
        if classes:
            temperature = calibration.fit_temperature(out_val, heldout.y_val)
            extra["temperature"] = round(temperature, 5)
            raw, tempered = out_test.softmax(1), (out_test / temperature).softmax(1)
            ece = (calibration.ece(raw, heldout.y_test), calibration.ece(tempered, heldout.y_test))
            metrics["test_ece"] = ece[1]
            files[CALIBRATION_PNG] = calibration.reliability_png(raw, tempered, heldout.y_test, work / CALIBRATION_PNG, title)
            files[CONFUSION_PNG] = calibration.confusion_png(tempered, heldout.y_test, classes, work / CONFUSION_PNG, title)
            out_val = (out_val / temperature).softmax(1)  # what after_fit reads: the calibrated answers
            accuracy = CLASSIFICATION["accuracy"]
            for name, (x_d, y_d, sha256) in heldout.domains.items():
                out_d = loop.predict_in_batches(model, x_d)
                domains.append(
                    {
                        "name": name,
                        "fingerprint": sha256,
                        "rows": len(y_d),
                        "accuracy": accuracy(out_d, y_d),
                        "interval": interval(accuracy, out_d, y_d),
                    }
                )
                metrics[f"ood_{name}_accuracy"] = domains[-1]["accuracy"]
        if after_fit:
            extra |= after_fit(out_val)
        if reference is not None:
            extra |= drift_reference(family, model, reference, temperature or 1.0)
        selected = next(row for row in history if row.get("selected"))
        card = Card(
            title=title,
            usage=usage,
            dataset=self.data.name,
            fingerprint=self.data.fingerprint,
            sizes={"train": len(y), "validation": len(heldout.y_val), "test": len(heldout.y_test)},
            metrics=metrics,
            intervals=intervals,
            selected=selected,
            epochs=args.epochs,
            seconds=seconds,
            temperature=temperature,
            ece=ece,
            domains=domains,
            figures=list(files),
        )
        params["selected_epoch"] = selected["epoch"]
        tag = store.save(
            family,
            model,
            {"arch": family.arch, **config, **extra},
            metrics=metrics | {k: v for k, v in selected.items() if k.startswith("val_")},
            dataset=self.data.name,
            fingerprint=self.data.fingerprint,
            params=params,
            seconds=seconds,
            files=files,
            card=card.markdown,
            **save,
        )
        print(f"saved {tag}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
        return tag
