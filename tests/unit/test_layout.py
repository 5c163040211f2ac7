"""The image runner's layout on a machine follows the device, the cores and the model's size."""

from __future__ import annotations

import pytest
import torch

from tiffin.config import Settings
from tiffin.runtime import layout

CPU, GPU = torch.device("cpu"), torch.device("cuda")
SMALL, LARGE = 2 * 1024 * 1024, 100 * 1024 * 1024  # the Fashion-MNIST CNN, ResNet-50


def plan(device, weights, **env):
    settings = Settings.from_env(env)
    return layout.image_workers(device, weights, settings), *layout.execution_threads(device, weights, settings)


@pytest.mark.parametrize(
    "cores, device, weights, expected",
    [
        ("2", CPU, SMALL, (2, 1, 1)),  # a single-threaded stream per core
        ("8", CPU, SMALL, (4, 2, 1)),  # up to 4 workers, the rest as model threads
        ("1", CPU, SMALL, (1, 1, 1)),
        ("2", CPU, LARGE, (1, 1, 2)),  # one stream, every core on each batch
        ("16", CPU, LARGE, (1, 1, 16)),
        ("16", GPU, SMALL, (1, 1, 16)),  # one CUDA context, one stream of batches
    ],
)
def test_layout(cores, device, weights, expected):
    assert plan(device, weights, TIFFIN_CPU_CORES=cores) == expected


def test_environment_overrides():
    env = {"TIFFIN_CPU_CORES": "4", "TIFFIN_IMAGE_WORKERS": "1"}
    assert plan(CPU, SMALL, **env) == (1, 4, 1)
    env["TIFFIN_HOT_MODEL_THREADS"] = "1"
    assert plan(CPU, SMALL, **env) == (1, 1, 4)
    env["TIFFIN_TORCH_THREADS"] = "3"
    assert plan(CPU, LARGE, **env) == (1, 1, 3)
