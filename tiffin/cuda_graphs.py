"""CUDA graphs for the image predictor on a GPU: one captured forward pass per batch-size
bucket, fed from pinned host memory, waited on without spinning.

A ResNet-50 forward pass launches ~150 kernels; from Python each launch costs the CPU a few
µs, and at small batches the GPU waits on the CPU. A graph replays the whole pass as one
launch. A graph's shapes are fixed when it is captured, so each bucket (1, 2, 4 ... 128
images) has its own, and a batch runs in the smallest bucket that holds it; the rows past
the batch hold whatever the last batch left there, and their outputs are never read (rows
of an eval-mode CNN do not mix). The issue's probe on an H100 (ResNet-50 fp16): eager
13,187 img/s at batch 128; graphs 12,135 at 32 and 13,420 at 128, i.e. batches of 32 run
near the best, which is what a serving batcher mostly sees.

The wait for each batch's answers sleeps on a blocking-sync CUDA event instead of the
default busy-wait: in the same probe the default spin cost the server a third of its CPU,
which the event loops feeding the GPU need.

TIFFIN_CUDA_GRAPHS=off runs the eager path; TIFFIN_CUDA_GRAPH_BUCKETS (e.g. "1,8,32,128")
sets the buckets.
"""

from __future__ import annotations

import bisect
import os
import threading
from typing import Callable

import numpy as np
import torch

DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def enabled() -> bool:
    return os.environ.get("TIFFIN_CUDA_GRAPHS", "on") != "off"


def buckets_from_env() -> tuple[int, ...]:
    raw = os.environ.get("TIFFIN_CUDA_GRAPH_BUCKETS")
    if not raw:
        return DEFAULT_BUCKETS
    try:
        buckets = tuple(sorted({int(b) for b in raw.split(",") if b.strip()}))
    except ValueError:
        raise ValueError(f"TIFFIN_CUDA_GRAPH_BUCKETS must be comma-separated batch sizes, got {raw!r}") from None
    if not buckets or buckets[0] < 1:
        raise ValueError(f"TIFFIN_CUDA_GRAPH_BUCKETS must name batch sizes of at least 1, got {raw!r}")
    return buckets


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

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], input_shape: tuple[int, ...],
                 device: torch.device, buckets: tuple[int, ...] = DEFAULT_BUCKETS, warmup_runs: int = 3):
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
