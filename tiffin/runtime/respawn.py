"""Workers that die are started again inside containers too, as they are on a host.

BentoML 1.4.39 starts its workers with `respawn=False` wherever `BENTOML_CONTAINERIZED` is set
(its images set it), leaving restarts to the platform. But a container runs several workers:
when one was killed, the container kept running on the other alone, for good, and a platform
that watches only the container never saw it (measured: the killed worker was not back 20 s
later; on a host BentoML starts a new one in ~2 s). The deployment hook below runs in
`bentoml serve`'s main process before it creates any worker, and drops the variable, which
BentoML reads for nothing else. TIFFIN_RESPAWN=off keeps BentoML's choice.
"""

from __future__ import annotations

import os

import bentoml

from tiffin import config


def respawn_workers() -> None:
    if not config.settings().respawn:
        return
    os.environ.pop("BENTOML_CONTAINERIZED", None)
    try:
        from bentoml.serving import running_inside_container
    except ImportError:
        return
    running_inside_container.cache_clear()


class RespawnsWorkers:
    """Mixin for `@bentoml.service` classes: their workers are started again when they die."""

    @bentoml.on_deployment
    def respawn_workers() -> None:
        respawn_workers()
