"""The drift tests as written on numpy and torch (tiffin/runtime/drift.py) against scipy's,
which the served images do not carry; and the summaries training and serving share."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tiffin.families import drift_features
from tiffin.runtime import drift


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.1, 0.3])
def test_ks_matches_scipy(shift):
    rng = np.random.default_rng(int(shift * 100))
    reference = np.sort(rng.normal(size=2000))
    live = rng.normal(shift, 1, size=500)
    d, p = drift.ks_2samp(reference, live)
    expected = stats.ks_2samp(reference, live, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    # scipy's asymptotic p-value has no small-sample correction: within a few points of it
    assert p == pytest.approx(expected.pvalue, abs=0.03 if expected.pvalue > 0.05 else 0.01)


def test_ks_with_ties_and_a_window_of_one_value():
    reference = np.sort(np.repeat(np.arange(10.0), 200))
    d, p = drift.ks_2samp(reference, np.full(500, 3.0))
    assert d == pytest.approx(stats.ks_2samp(reference, np.full(500, 3.0)).statistic) and p < 1e-10


@pytest.mark.parametrize("seed", range(4))
def test_chi_squared_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    ref = rng.integers(20, 400, size=6)
    live = rng.integers(5, 120, size=6)
    stat, p, v = drift.chi2_2xk(ref, live)
    expected = stats.chi2_contingency(np.array([ref, live]), correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-9)
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert v == pytest.approx(stats.contingency.association(np.array([ref, live]), method="cramer"), rel=1e-9)


def test_rare_and_unseen_categories_are_pooled():
    counts = {"a": 1000, "b": 990, "rare": 10}
    same = ["a"] * 250 + ["b"] * 248 + ["rare"] * 2
    assert drift.compare_categories(counts, same)[1] > 0.5
    unseen = ["a"] * 200 + ["b"] * 200 + ["storm"] * 100  # a category training never saw
    v, p = drift.compare_categories(counts, unseen)
    assert p < 1e-10 and v > 0.2


def test_the_summaries_choose_numbers_or_categories():
    ref = drift_features.reference(
        {"temp": [0.1, 0.2, 0.3], "hr": list(range(24)) * 2, "weathersit": ["clear", "mist"], "big": list(range(100))}
    )["features"]
    assert [ref[n]["kind"] for n in ("temp", "hr", "weathersit", "big")] == ["numeric", "categorical", "categorical", "numeric"]
    assert ref["hr"]["counts"]["7"] == 2 and ref["temp"]["sample"] == [0.1, 0.2, 0.3]
    texts = drift_features.of_inputs("text", ["A fine film.", ""], vocab=type("V", (), {"stoi": {"fine": 2, "film": 3}})())
    assert texts["length"].tolist() == [3, 0] and texts["coverage"].tolist() == pytest.approx([2 / 3, 1.0])
    pixels = np.zeros((2, 28, 28), dtype=np.uint8)
    pixels[1] = 255
    assert drift_features.of_inputs("image", pixels)["intensity"].tolist() == [0.0, 1.0]
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert drift_features.of_answers(probs, ["rotten", "fresh"])["predicted"] == ["rotten", "fresh"]
