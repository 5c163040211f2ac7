"""Drift, with the test store's models and real data: windows of held-out items the reference
never saw raise at most one alarm in 20; a shifted stream (inverted images, text from another
domain, temperature +0.3) is flagged in its first window, on the feature that moved. Then
through a real server: its workers score windows off the response path and export them."""

from __future__ import annotations

import builtins
import time

import bentoml
import httpx
import numpy as np
import pytest

from tests.conftest import MEASUREMENTS
from tiffin import families
from tiffin.families import bikeshare, drift_features, fashion, textcnn
from tiffin.runtime import drift
from tiffin.runtime.backends import classes_of
from train import datasets

pytestmark = pytest.mark.integration
WINDOW = 500
# English outside film reviews: the standard library's one-line docstrings
OTHER_DOMAIN = sorted(
    {line.strip() for f in vars(builtins).values() for line in (f.__doc__ or "").splitlines()[:1] if len(line.split()) >= 4}
)


def _monitor(family):
    stored = bentoml.models.get(family.tag)
    _, predictor = families.load(str(stored.tag))
    monitor = drift.monitor_for(family, stored.tag.version, predictor, classes_of(predictor))
    assert monitor is not None, "the test store's version has no drift reference"
    return monitor, predictor


def _window(monitor, predictor, items) -> dict:
    """One window's result, fed in batches of 100 as a model thread would."""
    result = None
    for i in range(0, len(items), 100):
        chunk = items[i : i + 100]
        inputs = drift_features.of_inputs(monitor.kind, chunk) if monitor.kind == "image" else chunk
        result = monitor.add(inputs, drift_features.of_answers(predictor(chunk), monitor.classes)) or result
    assert result is not None and result["items"] == len(items)
    return result


def _unseen(split):
    """The held-out items past the half the reference was made of."""
    k = min(drift_features.REFERENCE_ITEMS, len(split.y_test) // 2)
    if hasattr(split.x_test, "iloc"):
        return [dict(zip(bikeshare.FEATURES, row)) for row in split.x_test[bikeshare.FEATURES].iloc[k:].itertuples(index=False)]
    return split.x_test[k:]


def _draws(items, rng, n=20):
    return [[items[i] for i in rng.choice(len(items), WINDOW, replace=False)] for _ in range(n)]


CASES = {
    "image": (fashion.FAMILY, datasets.fashion_mnist, lambda batch: 255 - np.asarray(batch), "intensity"),
    "text": (textcnn.FAMILY, datasets.rotten_tomatoes, lambda texts: [OTHER_DOMAIN[i % len(OTHER_DOMAIN)] for i in range(len(texts))], "coverage"),
    "tabular": (bikeshare.FAMILY, datasets.bikeshare, lambda rows: [{**r, "temp": min(r["temp"] + 0.3, 1.0)} for r in rows], "temp"),
}  # fmt: skip


@pytest.mark.parametrize("kind", CASES)
def test_held_out_windows_rarely_alarm_and_a_shifted_one_always_does(model_store, kind):
    family, load, shift, moved = CASES[kind]
    monitor, predictor = _monitor(family)
    unseen = _unseen(load())
    rng = np.random.default_rng(0)
    windows = _draws(unseen, rng)
    if kind == "image":
        windows = [np.stack(w) for w in windows]
    results = [_window(monitor, predictor, w) for w in windows]
    alarms = sum(bool(r["drifted"]) for r in results)
    MEASUREMENTS.append(f"drift, {family.name}: {alarms} alarms in 20 held-out windows of {WINDOW}")
    assert alarms <= 1, [r["drifted"] for r in results]
    shifted = _window(monitor, predictor, shift(windows[0]))
    assert moved in shifted["drifted"], shifted
    MEASUREMENTS.append(f"drift, {family.name} shifted: {moved} score {shifted['features'][moved]['score']}")


def _series(url: str, name: str, **labels) -> list[float]:
    out = []
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            out.append(float(line.rsplit(" ", 1)[1]))
    return out


def test_a_served_model_flags_inverted_images_within_two_windows(server):
    """Inverted pixels over the OIP (an uploaded PNG would be turned back: the decoder puts
    garments on a dark ground). One connection meets one worker, whose window may hold earlier
    tests' items: within two windows it has scored one that drifted, and says so in /metrics."""
    version = bentoml.models.get(fashion.FAMILY.tag).tag.version
    inverted = 255 - datasets.fashion_mnist().x_test[-2 * WINDOW :]
    labels = {"model": fashion.FAMILY.name, "version": version}
    before = sum(_series(server.url, "tiffin_drift_windows_total", **labels, drifted="true"))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for batch in np.split(inverted, 20):
            tensor = {"name": "image", "datatype": "UINT8", "shape": list(batch.shape), "data": batch.reshape(-1).tolist()}
            assert client.post(f"/v2/models/{fashion.FAMILY.name}/infer", json={"inputs": [tensor]}).status_code == 200
    deadline = time.monotonic() + 10
    while sum(_series(server.url, "tiffin_drift_windows_total", **labels, drifted="true")) <= before:
        assert time.monotonic() < deadline, "no drifted window after the inverted images"
        time.sleep(0.2)
    assert max(_series(server.url, "tiffin_drift_detected", **labels)) == 1
    assert max(_series(server.url, "tiffin_drift_score", **labels, feature="intensity")) > 0.5
