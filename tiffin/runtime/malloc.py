"""Keeps glibc's malloc from handing batch-sized buffers back to the kernel after every batch.

A CPU forward pass allocates activations of a few MB, which glibc serves with mmap or trims
off the heap when freed, so the next batch takes them back page fault by page fault; batch
sizes that change with load keep its adaptive thresholds from settling. Fixed thresholds
keep them on the heap (docs/decisions/002-process-tuning.md). The price: a process keeps up
to TRIM_BYTES of freed memory per malloc arena for reuse.
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
