"""A predictor's forward pass (network, softmax, and the image families' normalisation) as one
frozen TorchScript graph, on CPU, for every family but the MiniLM tier, which is compute-bound
(docs/decisions/019-frozen-forward.md).

Why: eager PyTorch hands the GIL back at every op and must take it again before the next; in a
serving process the event loop holds it most of the time, so a small batch's ~25 ops each wait
for it, and a batch of 2 took 3.5 ms of wall time against 0.45 ms alone. A TorchScript graph
runs every op in C++ after one release of the GIL, which is also how Triton's PyTorch backend
runs models. Freezing inlines the weights and folds what it can. The graph then runs as frozen,
without the profiling executor, which ran the first two calls at each new batch size in
profiling mode (batch 5: 2.3-2.8 ms each, against 0.8 ms after); without it only the first
call at a size pays (oneDNN's set-up for the shape, as in eager mode). torch marks TorchScript as
deprecated in favour of torch.compile/torch.export, so this is a step that may fall away: where
tracing fails, or TIFFIN_TORCHSCRIPT=off, the eager forward stays.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch

from tiffin import config

log = logging.getLogger("tiffin")


class _Forward(torch.nn.Module):
    """Holds the network, so tracing sees its parameters, and runs the predictor's forward."""

    def __init__(self, net: torch.nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.net, self._forward = net, forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)


class Frozen:
    """Runs the frozen graph; callable from any thread."""

    def __init__(self, graph: torch.jit.ScriptModule):
        self.graph = graph

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.jit.optimized_execution(False):  # a flag of the calling thread
            return self.graph(x)


def freeze(forward: Callable[[torch.Tensor], torch.Tensor], net: torch.nn.Module, examples: list[torch.Tensor]) -> Frozen | None:
    """`forward` (which runs `net`) traced on `examples[0]` and frozen; None, with the reason
    logged, where tracing fails or the graph's answers differ from eager ones on any example
    (a forward whose ops depend on the batch's size would)."""
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # trace and freeze warn that TorchScript is deprecated; the module docstring says why we use it
            warnings.simplefilter("ignore")
            # check_trace off: our check below does its work, and its comparison imports sympy,
            # which the serving images leave out (docs/decisions/016-image-sizes.md)
            traced = torch.jit.trace(_Forward(net.eval(), forward).eval(), examples[0], check_trace=False)
            graph = Frozen(torch.jit.freeze(traced))
            for x in examples:
                if not torch.allclose(graph(x), forward(x), atol=1e-5, rtol=1e-4):
                    log.warning("the frozen forward differs from the eager one at batch %d; running eager", len(x))
                    return None
    except Exception as exc:  # a network TorchScript cannot trace runs eager, as before
        log.warning("could not freeze the forward pass (%s); running eager", exc)
        return None
    return graph


def fastest(
    device: torch.device, forward: Callable[[torch.Tensor], torch.Tensor], net: torch.nn.Module, examples: list[torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a predictor should run: `forward` frozen where it runs on CPU and TIFFIN_TORCHSCRIPT
    leaves it on and freezing works; else `forward` itself (a GPU runs CUDA graphs or eager)."""
    if device.type != "cpu" or not config.settings().torchscript:
        return forward
    graph = freeze(forward, net, examples)
    return forward if graph is None else graph
