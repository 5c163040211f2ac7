"""How the image runner lays itself out on a machine: worker processes, model threads per
worker, torch threads per model thread, and the GIL's switch interval. The measurements
behind each rule are in docs/decisions/001-image-runner-layout.md; every rule has a
setting that overrides it (tiffin/config.py)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import torch

from tiffin import config

# On CPU, a model whose weights pass this size runs as one stream that spreads each batch
# over every core, not one single-threaded stream per core: two streams each pull the
# weights through the shared cache. Our L3 is 32 MB.
LARGE_MODEL_BYTES = 32 * 1024 * 1024


def cpu_cores(settings: config.Settings | None = None) -> int:
    """The cores to lay out on: TIFFIN_CPU_CORES where set (a pod sees its node's cores, so the
    k8s manifests set the pod's request), else those this process may run on."""
    return (settings or config.settings()).cpu_cores or len(os.sched_getaffinity(0))


def _one_stream(device: torch.device, weights_bytes: int) -> bool:
    return device.type == "cuda" or weights_bytes >= LARGE_MODEL_BYTES


def image_workers(device: torch.device, weights_bytes: int, settings: config.Settings | None = None) -> int:
    """Processes of the image runner, each with its own GIL, batcher and hot-path listener on
    the shared port. CPU, small model: one per core, up to 4 (processes do not hand a GIL
    back and forth at every torch op). A large model: one, whose stream of batches runs on
    every core. A GPU: one, so one CUDA context owns the device and batches stay whole."""
    settings = settings or config.settings()
    if settings.image_workers:
        return settings.image_workers
    return 1 if _one_stream(device, weights_bytes) else min(cpu_cores(settings), 4)


def execution_threads(device: torch.device, weights_bytes: int, settings: config.Settings | None = None) -> tuple[int, int]:
    """(model threads, torch intra-op threads) for one worker's hot-path batcher: a worker's
    share of the cores split between model threads, each taking its own batch (1 x 1 with one
    worker per core). A large model, and any model on a GPU: one thread with all the cores."""
    settings = settings or config.settings()
    cores = max(1, cpu_cores(settings) // image_workers(device, weights_bytes, settings))
    threads = settings.hot_model_threads or (1 if _one_stream(device, weights_bytes) else min(cores, 4))
    return threads, settings.torch_threads or max(1, cores // threads)


def torch_threads_here() -> Callable[[], None]:
    """What a thread that runs torch ops calls first: the process's torch thread count (as the
    service set it on its main thread) set again for that thread. OpenMP keeps the count per
    thread, so a new thread's oneDNN ops run with one OpenMP thread per core whatever the main
    thread set, and the extra OpenMP threads spin between batches: /predict_demand at 64
    clients answered 2,000-11,000 req/s with them and 17,500-19,500 without (decision 001)."""
    return functools.partial(torch.set_num_threads, torch.get_num_threads())


def gil_switch_seconds(settings: config.Settings | None = None) -> float:
    """How long a thread may hold the GIL while another waits for it (Python's default: 5 ms,
    which holds a model thread up at every torch op while the event loop runs)."""
    return (settings or config.settings()).gil_switch_ms / 1000


def shared_workers(device: torch.device, settings: config.Settings | None = None) -> int:
    """Processes of a service that holds several models (the all-in-one API), each with every
    model, its own event loop and GIL. CPU: one per core, up to 4: one event loop parses,
    decodes and answers every request while holding the GIL, and at 64 clients it, not the
    models, bounded the image route (docs/decisions/009-front-door.md). A GPU: one, so one CUDA
    context owns the device and batches stay whole."""
    settings = settings or config.settings()
    if settings.api_workers:
        return settings.api_workers
    return 1 if device.type == "cuda" else min(cpu_cores(settings), 4)


def shared_process_threads(device: torch.device, settings: config.Settings | None = None) -> tuple[int, int]:
    """(model threads per model, torch intra-op threads) in each worker of `shared_workers`.
    torch's thread count is one per process, so it cannot follow each model: on CPU, a
    worker's share of the cores as one torch thread per model thread; on a GPU one stream per
    model and every core for torch's host-side work."""
    settings = settings or config.settings()
    if device.type == "cuda":
        return settings.hot_model_threads or 1, settings.torch_threads or cpu_cores(settings)
    cores = max(1, cpu_cores(settings) // shared_workers(device, settings))
    return settings.hot_model_threads or min(cores, 4), settings.torch_threads or 1


def image_max_batch(device: torch.device, settings: config.Settings | None = None) -> int:
    """Images per forward pass: 64 fill our 2 CPU cores (raw throughput stops growing past
    32-64, see `make bench`); a GPU wants 128."""
    return (settings or config.settings()).hot_max_batch or (128 if device.type == "cuda" else 64)
