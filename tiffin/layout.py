"""How the image runner lays itself out on a machine: worker processes, model threads per
worker, torch threads per model thread, and the GIL's switch interval. Each choice says
what it was measured against; each has an environment variable that overrides it."""

from __future__ import annotations

import os

import torch

# On CPU, a model whose weights pass this size runs as one stream that spreads each batch
# over every core, not as one single-threaded stream per core. Two streams each pull the
# weights through the shared cache: measured on our 2 cores (`make bench`'s raw section),
# the 1.7 MB Fashion-MNIST CNN served 12,400-13,800 img/s as 2 streams x 1 thread against
# 10,100-10,900 as 1 x 2, and the 98 MB ResNet-50 30-31 img/s as 2 x 1 against 40-41 as
# 1 x 2. Our L3 is 32 MB; halfway between the two models, in weight bytes.
LARGE_MODEL_BYTES = 32 * 1024 * 1024


def cpu_cores() -> int:
    """The cores the image runner lays itself out on: TIFFIN_CPU_CORES where set (the k8s
    manifests set it from the pod's CPU request, as a pod sees all of its node's cores),
    else those this process may run on."""
    return int(os.environ.get("TIFFIN_CPU_CORES", len(os.sched_getaffinity(0))))


def _one_stream(device: torch.device, weights_bytes: int) -> bool:
    return device.type == "cuda" or weights_bytes >= LARGE_MODEL_BYTES


def image_workers(device: torch.device, weights_bytes: int) -> int:
    """Processes of the image runner (BentoML workers, each with its own hot-path listener on
    the shared port, its own batcher and its own GIL).

    On CPU, for a model under LARGE_MODEL_BYTES: one per core, up to 4, each running one
    model thread on one torch thread. Threads of one process hand the GIL back and forth at
    every torch op, processes do not: measured on our 2 cores (`make bench` set-up, same
    run), 2 workers x 1 model thread answered 5,560-6,380 req/s at 64 clients with the
    machine 99 % busy, where 1 worker with 2 model threads answered 4,150-4,370 at 80 % (and
    4,800 against 2,530 at 16 clients). The price: each worker holds its own torch and model
    (~300 MB here) and batches split between workers. A larger model: one worker, whose one
    stream of batches runs on every core. On a GPU: one, so one CUDA context owns the device
    and its batches stay whole. TIFFIN_IMAGE_WORKERS overrides."""
    return int(os.environ.get("TIFFIN_IMAGE_WORKERS", 1 if _one_stream(device, weights_bytes) else min(cpu_cores(), 4)))


def execution_threads(device: torch.device, weights_bytes: int) -> tuple[int, int]:
    """(model threads, torch intra-op threads) for one worker's hot-path batcher.

    The cores a worker has (all of them, over `image_workers`) are split between its model
    threads, each taking its own batch from the queue: with one worker per core that is
    1 x 1. Within one process on our 2 cores, 2 model threads x 1 torch thread beat 1 x 2
    for the CNN before it ran channels_last (3,770-3,910 against 2,860-3,250 req/s at 64
    clients: when the event loop takes a core, one intra-op thread stalls the whole forward
    pass at its barrier) and drew level after (4,150-4,380). A model past LARGE_MODEL_BYTES,
    and any model on a GPU: one thread, with all of the worker's cores for torch.
    TIFFIN_HOT_MODEL_THREADS and TIFFIN_TORCH_THREADS override."""
    cores = max(1, cpu_cores() // image_workers(device, weights_bytes))
    threads = int(os.environ.get("TIFFIN_HOT_MODEL_THREADS", 1 if _one_stream(device, weights_bytes) else min(cores, 4)))
    return threads, int(os.environ.get("TIFFIN_TORCH_THREADS", max(1, cores // threads)))


def gil_switch_seconds() -> float:
    """How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).

    The hot path's event loop and its model threads share one GIL, and a model thread needs
    it back after every torch op. With 5 ms, a burst of requests on the loop holds each
    forward pass up at op after op: at 64 clients the model threads sat idle ~40 % of the
    time and served 2,540-2,840 req/s (0.50 of the raw limit); at 0.1 ms, 3,700-3,870 req/s
    (0.70-0.73), the threads ~80 % busy, everything else equal (0.5 ms: no gain; 0.05 ms:
    no further gain). With one single-threaded model per worker (the CPU default since) the
    loop is the only other taker and 5 ms and 0.1 ms measure level; it still matters wherever
    a worker runs several model threads. TIFFIN_GIL_SWITCH_MS overrides."""
    return float(os.environ.get("TIFFIN_GIL_SWITCH_MS", 0.1)) / 1000
