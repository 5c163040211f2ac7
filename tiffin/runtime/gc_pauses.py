"""Keeps Python's full garbage collections short in a serving process: once a service has
started, `gc.freeze()` moves what it has loaded (torch, BentoML, the model: ~250k objects,
120-240 ms a full walk) out of every later collection's walk. Figures:
docs/decisions/002-process-tuning.md. No collection runs first: it would add a full walk to
every cold start for a few hundred objects.
"""

from __future__ import annotations

import gc
import logging

import bentoml

from tiffin import config

log = logging.getLogger("tiffin")


def freeze_startup_objects() -> None:
    """Call once, when the process has loaded what it keeps (models, warm-up done).
    TIFFIN_GC_FREEZE=off leaves the collector as Python sets it."""
    if not config.settings().gc_freeze:
        return
    gc.freeze()
    log.debug("gc: %d start-up objects frozen", gc.get_freeze_count())


class FreezesStartupObjects:
    """Mixin for `@bentoml.service` classes: freezes once the service has started (BentoML runs
    start-up hooks after the instance, its model and its app are built)."""

    @bentoml.on_startup
    def freeze_startup_objects(self) -> None:
        freeze_startup_objects()
