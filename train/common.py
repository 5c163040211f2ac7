"""What every training script shares: its command line, a timer, where the curve goes."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from tiffin.config import settings


def parse(description: str, epochs: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small subset and 1 epoch, for tests")
    parser.add_argument("--epochs", type=int, default=None, help=f"default {epochs} (1 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 1 if args.quick else epochs
    torch.manual_seed(args.seed)
    # Two cores here: more intra-op threads than cores only adds contention.
    torch.set_num_threads(settings().train_threads or os.cpu_count() or 1)
    return args


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def __exit__(self, *exc):
        return False


def curve_path(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"tiffin-{name}-")) / "learning_curve.png"


def report(tag: str, metrics: dict[str, float]) -> None:
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    print(f"saved {tag}: {shown}", flush=True)
