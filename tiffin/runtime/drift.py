"""Drift: whether live inputs (and answers) still look like the training data, per model
version and worker, off the response path.

A model thread hands each answered batch to a `Monitor` (a put on a bounded queue, dropped
and counted when full); one thread per process summarises it (tiffin/families/drift_features)
into the version's window. When a window holds TIFFIN_DRIFT_WINDOW items (500) each feature
is compared with the reference stored with the version: numbers by the two-sample
Kolmogorov-Smirnov test, categories by a chi-squared test of the 2 x k table of reference and
window counts. The window drifts when a feature's p-value is below TIFFIN_DRIFT_ALPHA (0.01)
divided by the number of features (Bonferroni: one alarm per window at most alpha of the
time). Series: tiffin_drift_score{model,version,feature} (K-S distance, or Cramér's V),
tiffin_drift_p_value, tiffin_drift_detected{model,version}, tiffin_drift_windows_total
{model,version,drifted}, tiffin_drift_dropped_total.

The two tests are written here on numpy and torch.special (the chi-squared tail is torch's
regularised incomplete gamma) rather than taken from scipy, which would add 113 MB to every
image; tests/unit/test_drift_stats.py checks them against scipy's.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from tiffin.families import drift_features

log = logging.getLogger("tiffin")
QUEUE_BATCHES = 1024  # batches waiting for the drift thread, per process
MIN_EXPECTED = 5.0  # categories expected fewer times than this in a window are pooled


def ks_2samp(reference: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """Two-sample K-S distance and its asymptotic p-value (Kolmogorov's series, with the
    small-sample correction of Stephens, 1970); `reference` sorted."""
    live = np.sort(np.asarray(live, dtype=np.float64))
    both = np.concatenate([reference, live])
    n, m = len(reference), len(live)
    d = float(np.max(np.abs(np.searchsorted(reference, both, "right") / n - np.searchsorted(live, both, "right") / m)))
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 0.3:  # the series converges slowly there, and the p-value is 1 to 6 places
        return d, 1.0
    j = np.arange(1, 101)
    p = 2 * float(np.sum((-1.0) ** (j - 1) * np.exp(-2 * (j * lam) ** 2)))
    return d, min(max(p, 0.0), 1.0)


def chi2_2xk(reference: Sequence[float], live: Sequence[float]) -> tuple[float, float, float]:
    """Chi-squared test of a 2 x k table (reference counts, live counts): (statistic, p-value,
    Cramér's V)."""
    import torch

    table = np.array([reference, live], dtype=np.float64)
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0, 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    p = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(stat / 2, dtype=torch.float64)))
    return stat, p, math.sqrt(stat / table.sum())


def compare_categories(counts: dict[str, int], live: Sequence) -> tuple[float, float]:
    """(Cramér's V, p) of a window's categories against the reference's counts; categories the
    window would expect fewer than MIN_EXPECTED times, and any the reference never saw, are
    pooled into one cell."""
    seen: dict[str, int] = {}
    for value in live:
        key = str(value)
        seen[key] = seen.get(key, 0) + 1
    total = sum(counts.values())
    kept = [c for c in counts if counts[c] / total * len(live) >= MIN_EXPECTED]
    ref = [counts[c] for c in kept] + [total - sum(counts[c] for c in kept)]
    now = [seen.get(c, 0) for c in kept] + [len(live) - sum(seen.get(c, 0) for c in kept)]
    _, p, v = chi2_2xk(ref, now)
    return v, p


class Monitor:
    """One model version's windows in this worker."""

    def __init__(self, model: str, version: str, kind: str, reference: dict, classes: Sequence[str], vocab: Any = None):
        from tiffin.config import settings
        from tiffin.runtime.metrics import ModelMetrics

        s = settings()
        self.model, self.version, self.kind, self.classes, self.vocab = model, version, kind, list(classes), vocab
        self.reference = reference["features"]
        self._sorted = {
            name: np.asarray(f["sample"], dtype=np.float64) for name, f in self.reference.items() if f["kind"] == "numeric"
        }
        self.size, self.alpha = s.drift_window, s.drift_alpha
        self._window: dict[str, list] = {name: [] for name in self.reference}
        self._items = 0
        m = ModelMetrics.get()
        self._score = {name: m.drift_score.labels(model, version, name) for name in self.reference}
        self._p = {name: m.drift_p_value.labels(model, version, name) for name in self.reference}
        self._detected = m.drift_detected.labels(model, version)
        self._windows = {d: m.drift_windows.labels(model, version, d) for d in ("true", "false")}
        self._dropped = m.drift_dropped.labels(model, version)
        self.last: dict[str, Any] | None = None  # the last window's result

    def offer(self, batch: Any, out: np.ndarray) -> None:
        """On the model thread, after a batch was answered: only what cannot wait is done here
        (an image batch's summaries, as its buffer is reused; the predicted classes)."""
        inputs = drift_features.of_inputs(self.kind, batch) if self.kind == "image" else batch
        try:
            _queue().put_nowait((self, inputs, drift_features.of_answers(out, self.classes)))
        except queue.Full:
            self._dropped.inc()

    def add(self, inputs: Any, answers: dict[str, Sequence]) -> dict[str, Any] | None:
        """On the drift thread: summarise and add a batch; score the window when it is full."""
        features = inputs if self.kind == "image" else drift_features.of_inputs(self.kind, inputs, self.vocab)
        features = {**features, **answers}
        n = len(next(iter(answers.values())))
        for name, values in self._window.items():
            values.extend(features.get(name, ()))
        self._items += n
        if self._items < self.size:
            return None
        result = self.score()
        self._window = {name: [] for name in self.reference}
        self._items = 0
        return result

    def score(self) -> dict[str, Any]:
        features = {}
        for name, ref in self.reference.items():
            live = self._window[name]
            if not live:
                continue
            if ref["kind"] == "numeric":
                score, p = ks_2samp(self._sorted[name], np.asarray(live, dtype=np.float64))
            else:
                score, p = compare_categories(ref["counts"], live)
            features[name] = {"score": round(score, 4), "p": p}
            self._score[name].set(score)
            self._p[name].set(p)
        bound = self.alpha / max(len(features), 1)
        drifted = [name for name, f in features.items() if f["p"] < bound]
        self._detected.set(1 if drifted else 0)
        self._windows["true" if drifted else "false"].inc()
        was = bool(self.last and self.last["drifted"])
        if drifted and not was:  # said when it starts and when it ends, not every window
            log.warning(
                "drift in %s:%s over the last %d items: %s",
                self.model,
                self.version,
                self._items,
                ", ".join(f"{n} (score {features[n]['score']}, p {features[n]['p']:.2g})" for n in drifted),
            )
        elif was and not drifted:
            log.info("no drift in %s:%s over the last %d items", self.model, self.version, self._items)
        self.last = {"items": self._items, "drifted": drifted, "features": features}
        return self.last


def monitor_for(family: Any, version: str, predictor: Any, classes: Sequence[str]) -> Monitor | None:
    """The monitor of a loaded version (`classes`: a classifier's, [] for a regressor): None
    when drift is off or the version has no reference (saved before drift was measured, or
    made elsewhere)."""
    from tiffin.config import settings

    reference = (getattr(predictor, "config", None) or {}).get("drift")
    if not settings().drift or not reference:
        return None
    return Monitor(family.name, version, family.kind, reference, classes, getattr(predictor, "vocab", None))


_LOCK = threading.Lock()
_QUEUE: queue.Queue | None = None


def _queue() -> queue.Queue:
    global _QUEUE
    if _QUEUE is None:
        with _LOCK:
            if _QUEUE is None:
                q: queue.Queue = queue.Queue(QUEUE_BATCHES)
                threading.Thread(target=_drain, args=(q,), name="tiffin-drift", daemon=True).start()
                _QUEUE = q
    return _QUEUE


def _drain(q: queue.Queue) -> None:
    while True:
        monitor, inputs, answers = q.get()
        try:
            monitor.add(inputs, answers)
        except Exception:  # a window lost is not worth a worker: say so and go on
            log.exception("drift: a batch of %s:%s could not be summarised", monitor.model, monitor.version)
