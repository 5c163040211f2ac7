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


def test_cascade_threshold_is_stored_and_the_report_prints_the_curve(model_store):
    import json

    import numpy as np

    from tiffin import families
    from tiffin.families import textcnn
    from train import datasets

    stored, small = families.load(textcnn.FAMILY)
    cascade = stored.config["cascade"]
    texts = datasets.rotten_tomatoes().x_test
    confidence = np.concatenate([small(texts[i : i + 512]) for i in range(0, len(texts), 512)]).max(1)
    # the stored threshold escalates the target share of held-out inputs
    assert abs(float((confidence < cascade["threshold"]).mean()) - cascade["target_escalation"]) < 0.01

    out = _run("train.cascade_report", "--rows", "400")
    for t in ("0.50", "0.75", "0.95"):
        assert f"\n{t:>9} " in out
    assert "<- stored" in out and "stored threshold " in out and ("goal met" in out or "goal not met" in out or "no gap" in out)
    name = stored.tag.replace(":", "-")
    rows = json.loads((ROOT / "build" / "cascade" / f"{name}.json").read_text())["rows"]
    assert [r["threshold"] for r in rows][:3] == [0.5, 0.51, 0.52] and len(rows) == 50
    escalated = [r["escalated"] for r in rows]
    assert escalated == sorted(escalated)  # a higher threshold never escalates fewer
    assert Image.open(ROOT / "build" / "cascade" / f"{name}.png").format == "PNG"
