"""Saving into the model store and loading back gives the same model: same outputs,
metadata and labels intact, and no pickled bytes anywhere in the artifact."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tiffin import families, store
from tiffin.families import bikeshare, fashion, minilm, textcnn
from train import datasets

# Saved under names of their own, so they never become the "latest" model a server loads.
IMAGE, TEXT_SMALL, TEXT_LARGE, DEMAND = (
    replace(spec, name="unit-" + spec.name) for spec in (fashion.FAMILY, textcnn.FAMILY, minilm.FAMILY, bikeshare.FAMILY)
)
SAVE_ARGS = dict(metrics={"test_accuracy": 0.5}, dataset="unit-test", fingerprint="0" * 64, params={"lr": 0.1}, seconds=1.0)


def _assert_safe_artifact(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            assert f.suffix not in {".pt", ".pth", ".pkl", ".bin", ".ckpt"}, f
            assert f.read_bytes()[:2] != b"\x80\x04", f"{f} looks like a pickle"


def test_image_model_round_trip():
    torch.manual_seed(0)
    net = fashion.FashionCNN(channels=8, hidden=16).eval()
    config = {
        "arch": "FashionCNN",
        "channels": 8,
        "hidden": 16,
        "classes": fashion.CLASSES,
        "side": 28,
        "mean": fashion.MEAN,
        "std": fashion.STD,
    }
    tag = store.save(IMAGE, net, config, **SAVE_ARGS)
    loaded, pred = families.load(tag, torch.device("cpu"))
    pixels = datasets.fashion_mnist().x_test[:16]
    with torch.inference_mode():
        expected = torch.softmax(net(fashion.normalise(pixels)), 1).numpy()
    # served as trained, though the predictor folds BatchNorm into the convolutions and runs channels_last
    np.testing.assert_allclose(pred(pixels), expected, rtol=1e-5, atol=1e-6)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pred.model.modules())
    assert loaded.tag == tag
    assert loaded.metadata["metrics"] == {"test_accuracy": 0.5}
    assert loaded.metadata["dataset_sha256"] == "0" * 64
    assert {"code_version", "training_seconds", "params", "trained_at"} <= set(loaded.metadata)
    import bentoml

    assert bentoml.models.get(tag).info.labels == {"family": "image", "task": "classification", "project": "tiffin"}
    _assert_safe_artifact(loaded.path)


def test_textcnn_round_trip():
    torch.manual_seed(0)
    vocab = textcnn.Vocabulary.build(["a good film", "a bad film", "good good"], min_freq=1)
    net = textcnn.TextCNN(len(vocab), dim=8, filters=4).eval()
    config = {"arch": "TextCNN", "vocab": vocab.to_json(), "labels": textcnn.LABELS, "dim": 8, "filters": 4, "widths": [3, 4, 5]}
    tag = store.save(TEXT_SMALL, net, config, **SAVE_ARGS)
    _, pred = families.load(tag, torch.device("cpu"))
    texts = ["a good film", "bad", "something else entirely"]
    with torch.inference_mode():
        expected = torch.softmax(net(vocab.encode(texts)), 1).numpy()
    np.testing.assert_allclose(pred(texts), expected, rtol=1e-5, atol=1e-6)


def test_demand_round_trip():
    torch.manual_seed(0)
    split = datasets.bikeshare()
    enc = bikeshare.FeatureEncoder.fit(split.x_train)
    net = bikeshare.DemandMLP(enc.width, hidden=8).eval()
    config = {"arch": "DemandMLP", "inputs": enc.width, "hidden": 8, "encoder": enc.to_json()}
    tag = store.save(DEMAND, net, config, **SAVE_ARGS)
    _, pred = families.load(tag, torch.device("cpu"))
    rows = split.x_test.head(8)[bikeshare.FEATURES].to_dict("records")
    with torch.inference_mode():
        expected = bikeshare.to_counts(net(torch.as_tensor(enc.encode(split.x_test.head(8))))).numpy()
    np.testing.assert_allclose(pred(rows), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.timeout(300)
def test_minilm_round_trip_carries_its_encoder():
    torch.manual_seed(0)
    encoder = minilm.SentenceEncoder(datasets.minilm_dir())
    head = minilm.EmbeddingHead(encoder.dim, hidden=16).eval()
    config = {
        "arch": "MiniLM+EmbeddingHead",
        "encoder_dir": "encoder",
        "dim": encoder.dim,
        "hidden": 16,
        "labels": textcnn.LABELS,
        "max_tokens": minilm.MAX_TOKENS,
    }
    tag = store.save(TEXT_LARGE, head, config, copy_dirs={"encoder": datasets.minilm_dir()}, **SAVE_ARGS)
    loaded, pred = families.load(tag, torch.device("cpu"))
    assert (loaded.path / "encoder" / "model.safetensors").exists()
    texts = ["a moving, beautiful film", "dull and lifeless"]
    emb = encoder.encode(texts)
    # sentence-transformers embeddings are unit length and similar sentences are close
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-4)
    with torch.inference_mode():
        expected = torch.softmax(head(emb), 1).numpy()
    np.testing.assert_allclose(pred(texts), expected, rtol=1e-4, atol=1e-5)
    _assert_safe_artifact(loaded.path)
