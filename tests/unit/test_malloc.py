"""glibc keeps batch-sized buffers on the heap once the runner has fixed its thresholds."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import ctypes, sys
from tiffin.runtime import malloc

class Info(ctypes.Structure):  # struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
tuned = malloc.keep_batch_buffers()
before = libc.mallinfo2().hblks
block = libc.malloc(3 * 1024 * 1024)  # a batch's activation, about
mapped = libc.mallinfo2().hblks - before
libc.free(block)
print(tuned, mapped)
"""


def probe(**env) -> str:
    return subprocess.run(
        [sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout.split()


def test_a_batch_sized_block_comes_from_the_heap_not_mmap():
    assert probe() == ["True", "0"]


def test_off_leaves_glibc_alone():
    # glibc's default threshold (128 KiB until a larger mmapped block is freed) maps 3 MB
    assert probe(TIFFIN_MALLOC_TUNING="off") == ["False", "1"]
