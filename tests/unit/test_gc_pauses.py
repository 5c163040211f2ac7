"""Start-up objects leave the collector's walk; what requests make later stays collectable."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import gc
from tiffin.runtime import gc_pauses

kept = [[i] for i in range(50_000)]  # what a loaded model and its server hold
gc_pauses.freeze_startup_objects()
frozen = gc.get_freeze_count()
later = []
later.append(later)  # a cycle made after start-up ...
del later
print(frozen, gc.collect())  # ... is still found and freed
"""


def probe(**env) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True, check=True)
    frozen, collected = out.stdout.split()
    return int(frozen), int(collected)


def test_start_up_objects_are_frozen_and_later_garbage_still_collected():
    frozen, collected = probe()
    assert frozen >= 50_000 and collected >= 1


def test_switch_off_leaves_the_collector_alone():
    frozen, _ = probe(TIFFIN_GC_FREEZE="off")
    assert frozen == 0
