"""Calling runner services from the API service, robustly.

BentoML 1.4.39's client to dependent services (`SessionManager` in
`_bentoml_impl.client.proxy2`) replaces its aiohttp session every 100 requests and
closes the old one at once, which kills every request still in flight on it
("Server disconnected"): under 16+ concurrent requests a few percent fail. We keep the
refresh but close the old session only after the client timeout, when nothing can still
be using it. Remove this once BentoML closes sessions gracefully.

Its sessions also keep idle connections for aiohttp's 15 s while each runner's uvicorn
closes them after 5 s (BentoML starts dependency workers with uvicorn's default), so after a
pause every pooled connection can be stale at once: one retry was not always enough (a 500
in CI after a 13 s pause). Our sessions drop idle connections after CLIENT_KEEPALIVE_S, before
the server does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger("tiffin")
# below uvicorn's 5 s keep-alive, the runner side of every connection
CLIENT_KEEPALIVE_S = 4.0


def _patch_session_refresh() -> None:
    try:
        from _bentoml_impl.client import proxy2
    except ImportError:
        return
    manager = getattr(proxy2, "SessionManager", None)
    if manager is None or getattr(manager, "_tiffin_graceful", False):
        return
    if not all(hasattr(manager, name) for name in ("get_session", "_should_refresh", "_make_client")):
        log.warning("BentoML's SessionManager changed; not patching its session refresh")
        return

    async def get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._should_refresh():
            old = self._session
            self._session = self._make_client()
            connector = self._session.connector
            if getattr(connector, "_keepalive_timeout", None) is not None:  # aiohttp's own idle bound
                connector._keepalive_timeout = CLIENT_KEEPALIVE_S
            self._created_at = time.monotonic()
            self._request_count = 0
            if old is not None:
                grace = (self._timeout.total or 60) + 1
                asyncio.get_running_loop().call_later(grace, lambda: asyncio.ensure_future(old.close()))
        self._request_count += 1
        return self._session

    manager.get_session = get_session
    manager._tiffin_graceful = True


_patch_session_refresh()


class RunnerBusy(Exception):
    """A runner shed the call: its queue would have made it wait past max_latency_ms.
    Front ends answer 503 with Retry-After (gRPC: UNAVAILABLE)."""

    retry_after = 1


async def ask(method: Callable[[Any], Awaitable[list[dict]]], batch: Any) -> list[dict]:
    """Send a batch to a runner method and return its answers.

    The runner's server (uvicorn) drops idle connections after 5 s while the client
    (aiohttp) reuses them for 15 s, so a request can land on a connection just being
    closed. Inference is idempotent: one retry on a reset connection is safe.
    """
    from bentoml.exceptions import BentoMLException

    try:
        try:
            return await method(batch)
        except aiohttp.ClientConnectionError as exc:
            log.warning("runner connection reset (%s); retrying once", exc)
            return await method(batch)
    except BentoMLException as exc:
        if exc.error_code == 503:
            raise RunnerBusy("the model is busy: its queue is full; try again shortly") from None
        raise
