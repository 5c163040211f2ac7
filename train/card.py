"""The model card written into each version's directory (`model_card.md`, beside its
calibration and confusion PNGs): what it was trained on, how well it does with 95 % intervals,
how far its confidence can be trusted, what it is for and where it is known to fail.
`tiffin models show NAME` prints it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from train.calibration import BINS

RESAMPLES = 1000  # bootstrap draws for each interval


@dataclass
class Usage:
    """What a family's card says in words; its training script knows the data, so it says it."""

    intended: str
    limits: Sequence[str] = ()


@dataclass
class Card:
    title: str
    usage: Usage
    dataset: str
    fingerprint: str
    sizes: Mapping[str, int]
    metrics: Mapping[str, float]
    intervals: Mapping[str, tuple[float, float]]
    selected: Mapping[str, float]  # the validation row of the epoch kept
    epochs: int
    seconds: float
    temperature: float | None = None
    ece: tuple[float, float] | None = None  # test ECE before and after the temperature
    domains: Sequence[Mapping] = field(default_factory=list)  # out-of-domain evaluations
    figures: Sequence[str] = ()

    def markdown(self, tag: str) -> str:
        lines = [f"# Model card: {tag}", "", self.title, ""]
        lines += ["## Data", ""]
        lines += [f"- data set: `{self.dataset}` (sha256 `{self.fingerprint[:16]}…`)"]
        lines += ["- rows: " + ", ".join(f"{name} {n:,}" for name, n in self.sizes.items())]
        lines += ["- validation rows choose the epoch and the temperature; test rows are read once, after training", ""]
        lines += ["## Metrics", "", "| metric | test | 95 % interval |", "| --- | --- | --- |"]
        for name, value in self.metrics.items():
            lo_hi = self.intervals.get(name)
            lines.append(f"| {name} | {value:.4f} | {f'{lo_hi[0]:.4f} to {lo_hi[1]:.4f}' if lo_hi else ''} |")
        kept = ", ".join(f"{k}={v:.4f}" for k, v in self.selected.items() if k.startswith("val_"))
        lines += [
            "",
            f"Kept epoch {self.selected.get('epoch')} of {self.epochs} (validation: {kept}); trained in {self.seconds:.0f} s.",
            "",
        ]
        if self.temperature is not None and self.ece is not None:
            lines += ["## Calibration", ""]
            lines += [
                f"Served probabilities are softmax(logits / T) with T = {self.temperature:.3f}, fitted on the validation rows.",
                f"Expected calibration error on the test rows ({BINS} bins): {self.ece[0]:.4f} raw, {self.ece[1]:.4f} with T.",
                "",
            ]
        if self.domains:
            lines += [
                "## Out of domain",
                "",
                "| data set | sha256 | rows | accuracy | 95 % interval | change from test |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for d in self.domains:
                lo, hi = d["interval"]
                drop = d["accuracy"] - self.metrics.get("test_accuracy", float("nan"))
                lines.append(
                    f"| {d['name']} | `{d['fingerprint'][:16]}…` | {d['rows']:,} | {d['accuracy']:.4f} | {lo:.4f} to {hi:.4f} | {drop * 100:+.1f} points |"
                )
            lines.append("")
        lines += ["## Intended use", "", self.usage.intended, ""]
        if self.usage.limits:
            lines += ["## Known limits", ""] + [f"- {limit}" for limit in self.usage.limits] + [""]
        if self.figures:
            lines += ["## Figures", ""] + [f"![{name}]({name})" for name in self.figures] + [""]
        return "\n".join(lines)


def interval(
    score: Callable[[torch.Tensor, torch.Tensor], float], out: torch.Tensor, y: torch.Tensor, seed: int = 0
) -> tuple[float, float]:
    """A 95 % percentile-bootstrap interval of score(out, y) over the rows."""
    rng = np.random.default_rng(seed)
    n = len(y)
    draws = [score(out[idx], y[idx]) for idx in (torch.from_numpy(rng.integers(0, n, n)) for _ in range(RESAMPLES))]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)
