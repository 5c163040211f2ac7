"""Temperature scaling and ECE (train/calibration.py), the served temperature
(tiffin.families.base.tempered), and the validation split they are fitted on."""

import numpy as np
import pytest
import torch

from tiffin.families.base import tempered
from train import calibration, datasets


def _sampled(true_t: float, n: int = 20000, classes: int = 4, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / true_t): calibrated at true_t."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g) * 3
    y = torch.multinomial((logits / true_t).softmax(1), 1, generator=g).squeeze(1)
    return logits, y


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with(true_t):
    logits, y = _sampled(true_t)
    assert calibration.fit_temperature(logits, y) == pytest.approx(true_t, rel=0.05)


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    logits, y = _sampled(2.0)
    assert calibration.ece((logits / 2.0).softmax(1), y) < 0.02
    assert calibration.ece((logits / 0.5).softmax(1), y) > 0.1


def test_the_served_temperature_divides_the_logits_and_keeps_the_labels():
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    x = torch.randn(64, 5)
    with torch.no_grad():
        before = net(x)
        after = tempered(net, {"temperature": 2.5})(x)
    torch.testing.assert_close(after, before / 2.5)
    assert torch.equal(after.argmax(1), before.argmax(1))
    assert tempered(net, {}) is net  # no stored temperature: unchanged


def test_validation_rows_are_carved_from_training_rows_only():
    split = datasets.rotten_tomatoes()
    train, val, test = set(split.x_train), set(split.x_val), set(split.x_test)
    assert not (train & val) and not (val & test) and not (train & test)
    assert len(split.y_val) == round(0.1 * (len(split.y_train) + len(split.y_val)))
    assert datasets.rotten_tomatoes().x_val == split.x_val  # seeded: the same rows every run
    assert np.array_equal(datasets.rotten_tomatoes().y_val, split.y_val)
