"""The training CLI end to end: a run adds a new version with metadata, labels and its
learning curve; `train.all --missing` (what `make serve` runs) trains nothing twice."""

import subprocess
import sys

import bentoml
from PIL import Image

from tests.conftest import ROOT


def _run(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def test_training_run_adds_a_described_version(model_store):
    before = {str(m.tag) for m in bentoml.models.list("bikeshare-mlp")}
    out = _run("train.demand", "--quick")
    after = {str(m.tag) for m in bentoml.models.list("bikeshare-mlp")}
    [new] = after - before
    assert f"saved {new}" in out
    model = bentoml.models.get(new)
    meta = model.info.metadata
    assert meta["dataset"] == "islp-bikeshare" and len(meta["dataset_sha256"]) == 64
    assert set(meta["metrics"]) == {"test_r2", "test_mae"}
    assert meta["params"]["epochs"] == 1 and meta["training_seconds"] > 0
    assert model.info.labels["family"] == "tabular"
    curve = Image.open(model.path_of("learning_curve.png"))
    assert curve.format == "PNG" and curve.width > 200
    # the newest version is what a server loads by default
    assert str(bentoml.models.get("bikeshare-mlp:latest").tag) == new


def test_missing_only_trains_nothing_when_store_is_full(model_store):
    assert "nothing to train" in _run("train.all", "--quick", "--missing")
