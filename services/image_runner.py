"""Image runner: batches uint8 images and runs the image classifier (the Fashion-MNIST CNN,
or any model with an image predictor, e.g. the benchmark ResNet-50 via TIFFIN_IMAGE_MODEL)."""

from __future__ import annotations

import os
import sys

import bentoml
import numpy as np
import torch

from tiffin import store
from tiffin.batcher import Batcher
from tiffin.hotpath import FAST_HOST, FAST_PORT, HotPath, Listener, Metrics
from tiffin.serving import ModelRunner

HOT_PATH = HotPath()


def execution_threads(device: torch.device) -> tuple[int, int]:
    """(model threads, torch intra-op threads) for the hot path's batcher.

    On CPU: up to 4 model threads, each taking its own batch from the queue, with the cores
    split between them. Measured on our 2 cores: raw, the Fashion-MNIST CNN runs 9,500-10,000
    img/s as 2 streams x 1 thread (batch 32-64) against 7,150-8,760 as 1 stream x 2 threads;
    served at 64 clients, 2 x 1 answered 3,770-3,910 req/s where 1 x 2 answered 2,860-3,250
    (contiguous weights, same run): when the event loop takes a core, one intra-op thread
    stalls the whole forward pass at its barrier, while two independent forward passes keep
    going. With channels_last and BatchNorm folded the two served level (4,150-4,380 req/s;
    1 x 2 with less CPU and a lower p99 at 64 clients): set TIFFIN_HOT_MODEL_THREADS=1 for
    that trade. On a GPU: one thread, so
    one stream of batches keeps the device busy. TIFFIN_HOT_MODEL_THREADS and
    TIFFIN_TORCH_THREADS override."""
    cores = len(os.sched_getaffinity(0))
    workers = int(os.environ.get("TIFFIN_HOT_MODEL_THREADS", 1 if device.type == "cuda" else min(cores, 4)))
    return workers, int(os.environ.get("TIFFIN_TORCH_THREADS", max(1, cores // workers)))


def gil_switch_seconds() -> float:
    """How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).

    The hot path's event loop and its model threads share one GIL, and a model thread needs
    it back after every torch op. With 5 ms, a burst of requests on the loop holds each
    forward pass up at op after op: at 64 clients the model threads sat idle ~40 % of the
    time and served 2,540-2,840 req/s (0.50 of the raw limit); at 0.1 ms, 3,700-3,870 req/s
    (0.70-0.73), the threads ~80 % busy, everything else equal (0.5 ms: no gain; 0.05 ms:
    no further gain). TIFFIN_GIL_SWITCH_MS overrides."""
    return float(os.environ.get("TIFFIN_GIL_SWITCH_MS", 0.1)) / 1000


# One worker: the process that owns the model also owns the batcher, so every request
# joins one queue and batches stay full; a second worker halves batches and doubles memory
# (and on a GPU, two CUDA contexts time-share the device). TIFFIN_IMAGE_WORKERS overrides.
@bentoml.service(name="tiffin-image", workers=int(os.environ.get("TIFFIN_IMAGE_WORKERS", 1)), traffic={"timeout": 30})
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
        HOT_PATH.attach(Batcher(self.predictor, max_batch=int(os.environ.get("TIFFIN_HOT_MAX_BATCH", default_batch)),
                                max_wait_ms=float(os.environ.get("TIFFIN_HOT_MAX_WAIT_MS", 0)),
                                max_queue=int(os.environ.get("TIFFIN_HOT_MAX_QUEUE", 1024)),
                                deadline_s=float(os.environ.get("TIFFIN_HOT_DEADLINE_S", 10)), name="image-hot-path",
                                on_batch=self.hot_metrics.on_batch, threads=model_threads),
                        self.tag, self.predictor.config["classes"], self.predictor.input_shape, self.hot_metrics)
        self.listener = None if FAST_PORT == "off" else Listener(HOT_PATH, FAST_HOST, int(FAST_PORT))

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
