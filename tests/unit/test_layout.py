"""The image runner's layout on a machine follows the device, the cores and the model's size."""

from __future__ import annotations

import pytest
import torch

from tiffin import layout

CPU, GPU = torch.device("cpu"), torch.device("cuda")
SMALL, LARGE = 2 * 1024 * 1024, 100 * 1024 * 1024  # the Fashion-MNIST CNN, ResNet-50


def plan(device, weights):
    return layout.image_workers(device, weights), *layout.execution_threads(device, weights)


@pytest.mark.parametrize("cores, device, weights, expected", [
    ("2", CPU, SMALL, (2, 1, 1)),   # a single-threaded stream per core
    ("8", CPU, SMALL, (4, 2, 1)),   # up to 4 workers, the rest as model threads
    ("1", CPU, SMALL, (1, 1, 1)),
    ("2", CPU, LARGE, (1, 1, 2)),   # one stream, every core on each batch
    ("16", CPU, LARGE, (1, 1, 16)),
    ("16", GPU, SMALL, (1, 1, 16)),  # one CUDA context, one stream of batches
])
def test_layout(monkeypatch, cores, device, weights, expected):
    monkeypatch.setenv("TIFFIN_CPU_CORES", cores)
    assert plan(device, weights) == expected


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("TIFFIN_CPU_CORES", "4")
    monkeypatch.setenv("TIFFIN_IMAGE_WORKERS", "1")
    assert plan(CPU, SMALL) == (1, 4, 1)
    monkeypatch.setenv("TIFFIN_HOT_MODEL_THREADS", "1")
    assert plan(CPU, SMALL) == (1, 1, 4)
    monkeypatch.setenv("TIFFIN_TORCH_THREADS", "3")
    assert plan(CPU, LARGE) == (1, 1, 3)
