"""The benchmark models: ResNet-50's size, and served through the same predictor code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench import models as bench_models
from tiffin import families
from tiffin.families import benchmark, vision


def test_resnet50_has_resnet50s_parameters_and_outputs():
    net = benchmark.BenchResNet50().eval()
    assert sum(p.numel() for p in net.parameters()) == 25_557_032  # torchvision's resnet50, same layout
    with torch.inference_mode():
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 1000)


def test_bench_models_load_through_the_image_predictor(tmp_path):
    tag = bench_models.ensure(benchmark.RESNET50)
    assert bench_models.ensure(benchmark.RESNET50) == tag  # once; later calls reuse it
    loaded, predictor = families.load(tag, torch.device("cpu"))
    assert loaded.config["input_shape"] == [3, 224, 224] and isinstance(predictor, vision.ImagePredictor)
    probs = predictor(np.random.default_rng(0).integers(0, 256, (2, 3, 224, 224), dtype=np.uint8))
    assert probs.shape == (2, 1000) and np.allclose(probs.sum(1), 1, atol=1e-4)
    with pytest.raises(ValueError, match=r"shape \(N, 3, 224, 224\); got \(1, 28, 28\)"):
        predictor(np.zeros((1, 28, 28), dtype=np.uint8))
    _, probe = families.load(bench_models.ensure(benchmark.PROBE), torch.device("cpu"))
    assert probe(np.zeros((3, 28, 28), dtype=np.uint8)).shape == (3, 10)
