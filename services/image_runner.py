"""Image runner: batches uint8 images and runs the image classifier (the Fashion-MNIST CNN,
or any model with an image predictor, e.g. the benchmark ResNet-50 via TIFFIN_IMAGE_MODEL)."""

from __future__ import annotations

import os
import sys

import bentoml
import numpy as np
import torch

from tiffin import store
from tiffin.hotpath import FAST_HOST, FAST_PORT, MAX_BODY, HotPath, Metrics
from tiffin.http1 import Listener
from tiffin.serving import ModelRunner

HOT_PATH = HotPath()


def image_workers(device: torch.device) -> int:
    """Processes of the image runner (BentoML workers, each with its own hot-path listener on
    the shared port, its own batcher and its own GIL).

    On CPU: one per core, up to 4, each running one model thread on one torch thread.
    Threads of one process hand the GIL back and forth at every torch op, processes do not:
    measured on our 2 cores (`make bench` set-up, same run), 2 workers x 1 model thread
    answered 5,560-6,380 req/s at 64 clients with the machine 99 % busy, where 1 worker with
    2 model threads answered 4,150-4,370 at 80 % (and 4,800 against 2,530 at 16 clients).
    The price: each worker holds its own torch and model (~300 MB here) and batches split
    between workers. On a GPU: one, so one CUDA context owns the device and its batches stay
    whole. TIFFIN_IMAGE_WORKERS overrides."""
    cores = len(os.sched_getaffinity(0))
    return int(os.environ.get("TIFFIN_IMAGE_WORKERS", 1 if device.type == "cuda" else min(cores, 4)))


def execution_threads(device: torch.device) -> tuple[int, int]:
    """(model threads, torch intra-op threads) for one worker's hot-path batcher.

    The cores a worker has (all of them, over `image_workers`) are split between its model
    threads, each taking its own batch from the queue: with one worker per core that is
    1 x 1. Within one process on our 2 cores, 2 model threads x 1 torch thread beat 1 x 2
    before the model ran channels_last (3,770-3,910 against 2,860-3,250 req/s at 64 clients:
    when the event loop takes a core, one intra-op thread stalls the whole forward pass at
    its barrier) and drew level after (4,150-4,380). On a GPU: one thread, so one stream of
    batches keeps the device busy. TIFFIN_HOT_MODEL_THREADS and TIFFIN_TORCH_THREADS override."""
    cores = max(1, len(os.sched_getaffinity(0)) // image_workers(device))
    threads = int(os.environ.get("TIFFIN_HOT_MODEL_THREADS", 1 if device.type == "cuda" else min(cores, 4)))
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


@bentoml.service(name="tiffin-image", workers=image_workers(store.pick_device()), traffic={"timeout": 30})
class ImageRunner(ModelRunner):
    model_ref = bentoml.models.BentoModel(store.IMAGE.tag)

    def __init__(self) -> None:
        model_threads, intra_op = execution_threads(store.pick_device())
        torch.set_num_threads(intra_op)
        sys.setswitchinterval(gil_switch_seconds())
        super().__init__()
        # The hot path's batcher. Batches of 64 fill our 2 CPU cores (raw throughput stops
        # growing past 32-64, see `make bench`); a GPU wants 128. 1024 queued items keep
        # 512 closed-loop clients queued, not refused, at ~0.5 s of work on this machine;
        # past the 10 s deadline a request is refused, not run.
        default_batch = 128 if self.device.type == "cuda" else 64
        self.hot_metrics = Metrics.get()
        HOT_PATH.attach(self.predictor, self.tag, self.predictor.config["classes"], self.predictor.input_shape,
                        self.hot_metrics, max_batch=int(os.environ.get("TIFFIN_HOT_MAX_BATCH", default_batch)),
                        max_wait_ms=float(os.environ.get("TIFFIN_HOT_MAX_WAIT_MS", 0)),
                        max_queue=int(os.environ.get("TIFFIN_HOT_MAX_QUEUE", 1024)),
                        deadline_s=float(os.environ.get("TIFFIN_HOT_DEADLINE_S", 10)), name="image-hot-path",
                        threads=model_threads)
        self.listener = None if FAST_PORT == "off" else Listener(HOT_PATH.handle, HOT_PATH.refuse, FAST_HOST, int(FAST_PORT),
                                                                   max_body=MAX_BODY)

    @bentoml.on_startup
    async def start_hot_path(self) -> None:
        if self.listener is not None:
            await self.listener.start()

    @bentoml.on_shutdown
    async def stop_hot_path(self) -> None:
        if self.listener is not None:
            await self.listener.stop()

    # A forward pass of 64 images takes ~10-30 ms on our 2 CPU cores and 64 fills the
    # cores; larger batches only add latency here. max_latency_ms is BentoML's bound on
    # queue+compute time before it sheds a request with 503: the hot path's 10 s deadline,
    # so that bursts queue instead of failing (at 1 s, 256 clients of the typed API saw
    # 2-30 % 503s in `make bench`).
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=10_000)
    def classify(self, pixels: np.ndarray) -> list[dict]:
        """uint8 (N, 28, 28) -> per image: probability per class, model tag, batch size."""
        return self.answers(self.predictor(pixels))


# The lean route is also mounted on BentoML's port, at POST /fast/classify, for platforms
# that expose a single port; the listener on TIFFIN_FAST_PORT skips BentoML's middlewares.
ImageRunner.mount_asgi_app(HOT_PATH, path="/fast")
