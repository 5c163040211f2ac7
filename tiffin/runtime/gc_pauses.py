"""Keeps Python's full garbage collections short in a serving process.

A worker holds ~220-340k tracked objects once torch, BentoML and a model are loaded, nearly
all of them for the life of the process. A full (generation 2) collection walks every one:
120-240 ms here, measured with gc callbacks in the image runner. The typed routes allocate
enough per request to trigger one every few seconds, so one request in a few hundred
stalled ~200 ms (`make bench`: the typed API's p99 was ~200 ms at one client, p50 10 ms).

`gc.freeze()` after start-up moves what exists to a generation that collections skip:
later collections walk only what came after. Measured at one client, 8 s: the image
runner's longest answer 249-282 ms -> 52-64 ms, the typed API's p99 19 -> 15 ms and its
longest 230 -> 67 ms (the rest: objects made by the first requests, ~50k, 37-50 ms a walk).
No collection runs first: it would add a full walk (150-400 ms here) to every cold start,
to free the few hundred cyclic objects made since the last automatic one (898 measured),
which instead stay frozen for the life of the process.
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
