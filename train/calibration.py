"""Confidence that means what it says: temperature scaling fitted on validation logits (Guo
et al. 2017, "On Calibration of Modern Neural Networks"), expected calibration error, and the
two figures a classifier's model card shows (reliability diagram, confusion matrix)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torchmetrics.functional.classification import multiclass_calibration_error, multiclass_confusion_matrix

BINS = 15  # Guo et al.'s bin count for ECE


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The T > 0 that minimises the validation NLL of softmax(logits / T); one scalar, so the
    labels the model predicts never change, only how sure it says it is."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")
    logits, y = logits.detach().float().clone(), y.long().clone()  # clones: they may be inference tensors

    def nll() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(nll)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def ece(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Expected calibration error: the confidence-weighted gap between stated confidence and
    accuracy, over BINS equal-width bins of the top-class probability."""
    return float(multiclass_calibration_error(probs, y, num_classes=probs.shape[1], n_bins=BINS, norm="l1"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_png(raw: torch.Tensor, calibrated: torch.Tensor, y: torch.Tensor, path: Path, title: str) -> Path:
    """Accuracy against confidence per bin, before and after the temperature."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    edges = np.linspace(0, 1, BINS + 1)
    for probs, name in ((raw, "raw"), (calibrated, "temperature-scaled")):
        confidence, correct = probs.max(1).values.numpy(), (probs.argmax(1) == y).numpy()
        which = np.clip(np.digitize(confidence, edges) - 1, 0, BINS - 1)
        filled = [b for b in range(BINS) if (which == b).any()]
        ax.plot(
            [confidence[which == b].mean() for b in filled],
            [correct[which == b].mean() for b in filled],
            marker="o",
            label=f"{name} (ECE {ece(probs, y):.3f})",
        )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    ax.set_xlabel("stated confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return _save(fig, path)


def confusion_png(probs: torch.Tensor, y: torch.Tensor, classes: Sequence[str], path: Path, title: str) -> Path:
    """Rows: the true class; columns: the predicted one; each row as shares of that class."""
    plt = _plt()
    counts = multiclass_confusion_matrix(probs.argmax(1), y, num_classes=len(classes)).numpy()
    shares = counts / counts.sum(1, keepdims=True).clip(min=1)
    side = 1.6 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{shares[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shares[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path
