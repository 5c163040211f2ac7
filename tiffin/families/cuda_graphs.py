"""CUDA graphs for the image predictor on a GPU: one captured forward pass per batch-size
bucket, fed from pinned host memory, waited on without spinning.

From Python each kernel launch costs the CPU a few µs; a graph replays a whole pass as one
launch. A graph's shapes are fixed when it is captured, so each bucket (1, 2, 4 ... 128
images) has its own, and a batch runs in the smallest bucket that holds it; rows past the
batch hold what the last batch left there and are never read (rows of an eval-mode CNN do
not mix). The wait for each batch sleeps on a blocking-sync event: the default busy-wait
takes CPU the event loops feeding the GPU need. Figures: docs/decisions/004-cuda-graphs.md.
TIFFIN_CUDA_GRAPHS=off runs eager; TIFFIN_CUDA_GRAPH_BUCKETS sets the buckets.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

import numpy as np
import torch

from tiffin import config

DEFAULT_BUCKETS = config.CUDA_GRAPH_BUCKETS


def bucket_for(n: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds `n` items (`buckets` sorted); the largest when none
    does (the caller then runs the batch in pieces of that size)."""
    i = bisect.bisect_left(buckets, n)
    return buckets[min(i, len(buckets) - 1)]


def pieces(n: int, buckets: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(start, stop, bucket) runs that cover a batch of `n`: whole largest buckets, then the
    rest in the smallest bucket that holds it."""
    out, start, largest = [], 0, buckets[-1]
    while n - start > largest:
        out.append((start, start + largest, largest))
        start += largest
    out.append((start, n, bucket_for(n - start, buckets)))
    return out


class GraphedForward:
    """uint8 (N, *input_shape) on the host -> float32 (N, classes) probabilities, through one
    CUDA graph per bucket of `forward` (uint8 on the device -> probabilities on the device).
    Thread-safe: the buffers are shared, so calls take turns (a GPU runs one batch at a time
    from here anyway)."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        input_shape: tuple[int, ...],
        device: torch.device,
        buckets: tuple[int, ...] = DEFAULT_BUCKETS,
        warmup_runs: int = 3,
    ):
        # An explicit index: "cuda" alone means each thread's current device, which in the
        # model thread is always 0.
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.buckets, self.device = tuple(sorted(buckets)), device
        largest = self.buckets[-1]
        self._lock = threading.Lock()
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._outputs: dict[int, torch.Tensor] = {}
        with torch.cuda.device(device):
            # made outside inference mode: ordinary tensors may be written in place in any mode
            self._inputs = {b: torch.zeros((b, *input_shape), dtype=torch.uint8, device=device) for b in self.buckets}
            self._staging = torch.zeros((largest, *input_shape), dtype=torch.uint8).pin_memory()
            self._done = torch.cuda.Event(blocking=True)
            with torch.inference_mode():
                self._capture(forward, warmup_runs)
            classes = self._outputs[largest].shape[1]
            self._results = torch.zeros((largest, classes), dtype=torch.float32).pin_memory()
            torch.cuda.synchronize(device)

    def _capture(self, forward: Callable[[torch.Tensor], torch.Tensor], warmup_runs: int) -> None:
        device = self.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # cuDNN/cuBLAS pick algorithms and workspaces outside capture
            for b in self.buckets:
                for _ in range(warmup_runs):
                    forward(self._inputs[b])
        torch.cuda.current_stream(device).wait_stream(side)
        # One memory pool for every graph, largest captured first (the smaller ones fit in what
        # it left), all on one capture stream of this device: torch.cuda.graph's own default
        # stream is made on whatever device was current when first used. Sharing the pool
        # means replaying one graph may overwrite another's output: safe here because each
        # call copies its output out and waits for it before the next replay, under the lock.
        pool, capture = torch.cuda.graph_pool_handle(), torch.cuda.Stream(device)
        for b in reversed(self.buckets):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool, stream=capture):
                self._outputs[b] = forward(self._inputs[b])
            self._graphs[b] = graph

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        n = len(pixels)
        out = np.empty((n, self._results.shape[1]), dtype=np.float32)
        # by index: the model thread is not the thread that built this, and its current device is 0
        with self._lock, torch.cuda.device(self.device):
            staging, results = self._staging.numpy(), self._results.numpy()
            for start, stop, bucket in pieces(n, self.buckets):
                count = stop - start
                staging[:count] = pixels[start:stop]
                self._inputs[bucket][:count].copy_(self._staging[:count], non_blocking=True)
                self._graphs[bucket].replay()
                self._results[:count].copy_(self._outputs[bucket][:count], non_blocking=True)
                self._done.record()
                self._done.synchronize()  # sleeps until the copy back lands (blocking-sync event)
                out[start:stop] = results[:count]
        return out
