"""CUDA graphs per batch-size bucket (tiffin/families/cuda_graphs.py): which bucket runs a batch on
any machine, and, where a GPU is present, that the graphs answer as the eager pass does."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from bench import models as bench_models
from tiffin import families
from tiffin.config import Settings, SettingsError
from tiffin.families import benchmark, cuda_graphs, fashion

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@pytest.mark.parametrize("n, bucket", [(1, 1), (3, 4), (8, 8), (9, 16), (100, 128), (128, 128), (500, 128)])
def test_a_batch_runs_in_the_smallest_bucket_that_holds_it(n, bucket):
    assert cuda_graphs.bucket_for(n, BUCKETS) == bucket


@pytest.mark.parametrize(
    "n, expected",
    [
        (5, [(0, 5, 8)]),
        (128, [(0, 128, 128)]),
        (300, [(0, 128, 128), (128, 256, 128), (256, 300, 64)]),  # past the largest: whole pieces, then the rest
    ],
)
def test_pieces_cover_the_batch_once_in_order(n, expected):
    assert cuda_graphs.pieces(n, BUCKETS) == expected


def test_buckets_from_the_environment():
    assert Settings.from_env({}).cuda_graph_buckets == BUCKETS == cuda_graphs.DEFAULT_BUCKETS
    assert Settings.from_env({"TIFFIN_CUDA_GRAPH_BUCKETS": "32, 8,128,8"}).cuda_graph_buckets == (8, 32, 128)
    for bad in ("eight", "0,8"):
        with pytest.raises(SettingsError, match="TIFFIN_CUDA_GRAPH_BUCKETS"):
            Settings.from_env({"TIFFIN_CUDA_GRAPH_BUCKETS": bad})


def test_the_cpu_predictor_stays_eager():
    _, probe = families.load(bench_models.ensure(benchmark.PROBE), torch.device("cpu"))
    assert probe.graphed is None
    assert probe(np.zeros((3, 28, 28), dtype=np.uint8)).shape == (3, 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("n", [1, 3, 8, 77, 130])
def test_graphs_answer_as_the_eager_pass_does(n):
    torch.manual_seed(0)
    device = torch.device("cuda")
    net = (
        fashion.FashionCNN(channels=8, hidden=16).eval().to(device=device, dtype=torch.float16, memory_format=torch.channels_last)
    )

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = fashion.normalise(x).to(torch.float16).contiguous(memory_format=torch.channels_last)
        return torch.softmax(net(x).float(), dim=1)

    graphed = cuda_graphs.GraphedForward(forward, (28, 28), device, BUCKETS)
    rng = np.random.default_rng(n)
    answers: list[tuple[np.ndarray, np.ndarray]] = []

    def call() -> None:  # from a thread of its own, as the batcher's model thread calls it
        for _ in range(2):  # a second batch through the same buffers: nothing of the first leaks into it
            pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            with torch.inference_mode():
                expected = forward(torch.from_numpy(pixels).to(device)).cpu().numpy()
                answers.append((graphed(pixels), expected))

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert len(answers) == 2
    for got, expected in answers:
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, expected, atol=2e-3)
    # an empty capture would answer every batch with the zero warm-up input's output
    assert not np.allclose(answers[0][0], answers[1][0])
