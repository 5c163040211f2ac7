"""The image runner's layout on a machine follows the device, the cores and the model's size."""

from __future__ import annotations

import asyncio
import ctypes
import os

import pytest
import torch

from tiffin.config import Settings
from tiffin.runtime import layout
from tiffin.runtime.batcher import Batcher

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


def _openmp_threads() -> int:
    """omp_get_max_threads() of the calling thread, from the OpenMP runtime torch loaded."""
    with open("/proc/self/maps") as maps:
        path = next(line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line)
    return ctypes.CDLL(path).omp_get_max_threads()


def test_a_model_thread_runs_torch_with_the_process_s_thread_count():
    torch.zeros(1).add_(1)  # torch's OpenMP runtime loaded
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seen: dict[str, int] = {}

        def record(name):
            def fn(batch):
                seen[name] = _openmp_threads()
                return batch

            return fn

        async def one(batcher):
            try:
                return await batcher.submit(0)
            finally:
                batcher.close()

        asyncio.run(one(Batcher(record("set"), collate=list, on_start=layout.torch_threads_here())))
        asyncio.run(one(Batcher(record("unset"), collate=list)))
    finally:
        torch.set_num_threads(before)
    assert seen["set"] == 1
    if (os.cpu_count() or 1) > 1:  # the failure this guards against: OpenMP's default, a thread per core
        assert seen["unset"] == os.cpu_count()
