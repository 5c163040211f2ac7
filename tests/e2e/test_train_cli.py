"""The training CLI end to end: a run adds a new version with metadata, labels, its learning
curve and model card; a classifier's version is calibrated on validation rows; `train.all
--missing` (what `make serve` runs) trains nothing twice."""

import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
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
    assert set(meta["metrics"]) == {"test_r2", "test_mae", "val_r2", "val_mae"}
    assert meta["params"]["epochs"] == 1 and meta["params"]["selected_epoch"] == 1 and meta["training_seconds"] > 0
    assert model.info.labels["family"] == "tabular"
    curve = Image.open(model.path_of("learning_curve.png"))
    assert curve.format == "PNG" and curve.width > 200
    card = Path(model.path_of("model_card.md")).read_text()
    assert card.startswith(f"# Model card: {new}\n") and f"| test_r2 | {meta['metrics']['test_r2']:.4f} | " in card
    assert "islp-bikeshare" in card and "## Known limits" in card
    # the newest version is what a server loads by default
    assert str(bentoml.models.get("bikeshare-mlp:latest").tag) == new


def test_a_classifier_is_calibrated_on_validation_rows_and_its_card_says_so(model_store):
    """The test store's Fashion-MNIST version: a temperature fitted on validation rows, applied
    by the predictor, ECE and an interval in its card, which `tiffin models show` prints."""
    import numpy as np
    import torch

    from tiffin import families, store
    from tiffin.families import fashion
    from train import calibration, datasets

    stored, predictor = families.load(fashion.FAMILY, torch.device("cpu"))
    t = stored.config["temperature"]
    assert 0.05 < t < 20 and t != 1.0
    data = datasets.fashion_mnist()
    net = store.load_weights(fashion.FashionCNN(stored.config["channels"], stored.config["hidden"]), stored.path)
    with torch.inference_mode():
        logits = net(fashion.normalise(data.x_val[:256]))
    # served probabilities are the tempered ones, and the temperature is the validation optimum
    np.testing.assert_allclose(predictor(data.x_val[:256]), (logits / t).softmax(1).numpy(), atol=1e-5)
    assert calibration.fit_temperature(logits, torch.as_tensor(data.y_val[:256])) == pytest.approx(t, rel=0.5)
    metrics = stored.metadata["metrics"]
    assert 0 <= metrics["test_ece"] < 0.2 and "val_accuracy" in metrics
    for png in ("calibration.png", "confusion_matrix.png", "learning_curve.png"):
        assert Image.open(stored.path / png).format == "PNG"
    shown = subprocess.run(
        [sys.executable, "-m", "tiffin.client.cli", "models", "show", stored.tag],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert shown.startswith(f"# Model card: {stored.tag}\n")
    assert f"| test_accuracy | {metrics['test_accuracy']:.4f} | " in shown and " to " in shown
    assert f"T = {t:.3f}" in shown and "## Serving state" in shown


def test_the_large_tier_carries_its_tuned_encoder_and_its_card_names_the_other_domain(model_store):
    """Fine-tuning changes the MiniLM layers above the frozen ones and nothing below (but the
    rounding to the stored dtype); the version's encoder/ holds those weights (what serving
    loads), beside the tuning curve."""
    import torch
    from safetensors.torch import load_file

    from tiffin import families
    from tiffin.families import bert, minilm
    from train import datasets

    stored, _ = families.load(minilm.FAMILY, torch.device("cpu"))
    tuned = load_file(str(stored.path / stored.config["encoder_dir"] / "model.safetensors"))
    shipped = load_file(str(datasets.minilm_dir() / "model.safetensors"))
    frozen = stored.metadata["params"]["finetune"]["frozen_layers"]
    assert {t.dtype for t in tuned.values()} == {bert.STORED_DTYPE}
    changed = {int(name.split(".")[2]) for name, t in tuned.items() if not torch.equal(t, shipped[name].to(t.dtype))}
    assert changed == set(range(frozen, 6))
    assert Image.open(stored.path / "finetune_curve.png").format == "PNG"
    _, _, sha256 = datasets.amazon_snippets()
    assert f"| amazon | `{sha256[:16]}…` | 300 | " in (stored.path / "model_card.md").read_text()


def test_the_small_tier_learns_from_the_served_large_tier(model_store):
    import torch

    from tiffin import families
    from tiffin.families import minilm, textcnn

    small, _ = families.load(textcnn.FAMILY, torch.device("cpu"))
    large, _ = families.load(minilm.FAMILY, torch.device("cpu"))
    assert small.metadata["params"]["teacher"] == large.tag


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
    split = datasets.rotten_tomatoes()

    def escalated(texts) -> float:
        confidence = np.concatenate([small(texts[i : i + 512]) for i in range(0, len(texts), 512)]).max(1)
        return float((confidence < cascade["threshold"]).mean())

    # the stored threshold escalates the target share of the validation rows it was chosen on,
    # and about that share of the unseen test rows
    assert abs(escalated(split.x_val) - cascade["target_escalation"]) < 0.01
    assert abs(escalated(split.x_test) - cascade["target_escalation"]) < 0.05

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
