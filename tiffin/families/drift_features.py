"""What drift is measured on, defined once for training (the reference saved with every
version, in its config as "drift") and serving (the live windows, tiffin/runtime/drift.py).

Per input kind, a few summaries of each item: an image's mean intensity (0-1); a text's
length in tokens and, for a model with a word vocabulary, the share of its tokens the
vocabulary knows; a tabular row's columns as they are. And the model's answers: the
predicted class, or the predicted value. A feature is compared as a number (K-S) or as
categories (chi-squared): floats are numbers; strings, flags and integer columns with few
values (hour, month, weekday) are categories.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

REFERENCE_ITEMS = 2000  # held-out items summarised into a version's reference (at most half of them)
MAX_CATEGORIES = 32  # an integer column with more distinct values is compared as numbers
PREDICTED = "predicted"


def of_inputs(kind: str, items: Any, vocab: Any = None) -> dict[str, Sequence]:
    """`items`: images as uint8 (N, ...), texts, or tabular rows (dicts, or a mapping of
    columns such as a DataFrame); `vocab`: a text model's word vocabulary (a `stoi` mapping)."""
    if kind == "image":
        pixels = np.asarray(items)
        return {"intensity": pixels.reshape(len(pixels), -1).mean(1, dtype=np.float64) / 255.0}
    if kind == "text":
        from tiffin.families.textcnn import tokenize

        tokens = [tokenize(t) for t in items]
        out: dict[str, Sequence] = {"length": np.array([len(t) for t in tokens], dtype=np.float64)}
        if vocab is not None:
            known = vocab.stoi
            out["coverage"] = np.array([sum(w in known for w in t) / len(t) if t else 1.0 for t in tokens])
        return out
    if isinstance(items, Mapping):  # columns
        return {name: list(values) for name, values in items.items()}
    return {name: [row[name] for row in items] for name in (items[0] if len(items) else {})}


def of_answers(out: np.ndarray, classes: Sequence[str]) -> dict[str, Sequence]:
    """A classifier's probabilities (N, C) -> the predicted classes; a regressor's (N,) values."""
    if classes:
        names = list(classes)
        return {PREDICTED: [names[i] for i in np.asarray(out).argmax(1)]}
    return {PREDICTED: np.asarray(out, dtype=np.float64).reshape(-1)}


def _is_numeric(values: Sequence) -> bool:
    array = np.asarray(values)
    if array.dtype.kind == "f":
        return True
    return array.dtype.kind in "iu" and len(np.unique(array)) > MAX_CATEGORIES


def reference(features: dict[str, Sequence]) -> dict[str, Any]:
    """Summaries of held-out items -> the JSON stored with a version: a sorted sample of each
    numeric feature, the counts of each categorical one."""
    out: dict[str, Any] = {}
    for name, values in features.items():
        if _is_numeric(values):
            out[name] = {"kind": "numeric", "sample": np.round(np.sort(np.asarray(values, dtype=np.float64)), 6).tolist()}
        else:
            out[name] = {"kind": "categorical", "counts": dict(Counter(str(v) for v in values))}
    return {"items": max((len(v) for v in features.values()), default=0), "features": out}
