"""Keeps glibc's malloc from handing batch-sized buffers back to the kernel after every batch.

A CPU forward pass allocates activations of a few MB (a batch of 25 Fashion-MNIST images:
~2.5 MB per conv output). glibc serves blocks that large with mmap, or trims them off the
top of a thread's heap when freed, so the next batch takes them back page fault by page
fault, zeroing each page. Batches whose size changes with load (the hot path's) keep glibc's
adaptive thresholds from settling: in `make bench`'s set-up, at 64 clients, a model thread
spent 2-42 µs of kernel time per request this way and the runner served 7,000-8,300 req/s;
with fixed thresholds, 2-3 µs and 8,200-8,800 req/s, same build, same run.

The price: a process keeps up to TRIM_BYTES of freed memory per malloc arena for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from tiffin import config

log = logging.getLogger("tiffin")

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks under 32 MB (glibc's ceiling for this setting on 64-bit) come from the heap, which is
# trimmed only when 128 MB lie free at its top.
MMAP_BYTES = 32 * 1024 * 1024
TRIM_BYTES = 128 * 1024 * 1024


def keep_batch_buffers() -> bool:
    """Fixes the thresholds for this process (glibc only; TIFFIN_MALLOC_TUNING=off leaves them
    alone). True when they were set."""
    if not config.settings().malloc_tuning:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES) == 1
    if not done:
        log.warning("mallopt refused the batch-buffer thresholds; glibc's adaptive ones stay")
    return done
