"""The CPU image predictor runs its forward pass as one frozen TorchScript graph, answering as
the eager pass does; a forward that cannot be frozen faithfully, or TIFFIN_TORCHSCRIPT=off,
runs eager."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tiffin import config, store
from tiffin.families import fashion, frozen


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    net = fashion.FashionCNN(channels=8, hidden=16).eval()
    for m in net.modules():  # BatchNorm statistics other than the identity, so folding them shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    save_file(net.state_dict(), str(tmp_path / store.WEIGHTS))
    cfg = {"channels": 8, "hidden": 16, "classes": fashion.CLASSES, "mean": fashion.MEAN, "std": fashion.STD, "temperature": 1.5}
    return tmp_path, cfg


def _predictor(model_dir, monkeypatch, setting: str) -> fashion.FashionPredictor:
    monkeypatch.setenv("TIFFIN_TORCHSCRIPT", setting)
    config.settings.cache_clear()
    try:
        return fashion.FashionPredictor(*model_dir, torch.device("cpu"))
    finally:
        config.settings.cache_clear()


def test_the_frozen_forward_answers_as_the_eager_one_at_every_batch_size(model_dir, monkeypatch):
    graph = _predictor(model_dir, monkeypatch, "on")
    eager = _predictor(model_dir, monkeypatch, "off")
    assert isinstance(graph.run, frozen.Frozen) and eager.run == eager.forward
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 64, 65):  # sizes it was not traced or checked at among them
        pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        got, want = graph(pixels), eager(pixels)
        assert got.shape == (n, 10) and np.allclose(got.sum(1), 1, atol=1e-5)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_forward_that_depends_on_its_input_runs_eager():
    net = torch.nn.Linear(4, 2)

    def forward(x: torch.Tensor) -> torch.Tensor:  # a branch on the data: a trace keeps one side
        return net(x) if float(x.sum()) > 0 else -net(x)

    examples = [torch.ones(2, 4), -torch.ones(3, 4)]
    assert frozen.freeze(forward, net, examples) is None
    assert frozen.freeze(net.forward, net, examples) is not None


def test_the_forward_freezes_where_sympy_is_not_installed():
    """The serving images leave sympy out (decision 016); freezing must not import it."""
    code = (
        "import sys; sys.modules['sympy'] = None; sys.modules['networkx'] = None\n"
        "import torch\n"
        "from tiffin.families import frozen\n"
        "net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())\n"
        "assert frozen.freeze(net.forward, net, [torch.randn(2, 1, 8, 8), torch.randn(3, 1, 8, 8)]) is not None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
