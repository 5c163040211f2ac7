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
    """A runner shed the call (its queue would have made it wait past its deadline), or cannot
    be reached. Front ends answer 503 with Retry-After (gRPC: UNAVAILABLE)."""

    retry_after = 1


class RunnerFailed(Exception):
    """A runner answered an error other than 503 (a route its version lacks, a batch its model
    failed on). It is the runner's fault, not the caller's: front ends answer 502 Bad Gateway
    with the runner's status (gRPC: UNAVAILABLE), never a bare 500."""


class RunnerHealth:
    """One runner as this worker last saw it. Its `/readyz` is asked every TIFFIN_RUNNER_PROBE_S
    with a timeout of half that, so the gateway's `/readyz`, the OIP's model ready and the
    model's routes answer at once from what is known: a runner that is gone or restarting
    makes them 503 within a period or two, instead of each waiting on it (BentoML's own probe
    waits 5 s per dependency; a runner restarting on the host accepts connections and answers
    none). A refused connection counts at once; a timeout only twice running, so one slow
    answer from a busy runner never turns its traffic away. Calls in flight when it goes down
    are answered 503 then, not left to their timeout."""

    def __init__(self, name: str, handle: Any):
        self.name, self.handle = name, handle
        self.up: bool | None = None  # None: not asked yet
        self.cause = ""
        self._timeouts = 0
        self._was_up = False
        self._task: asyncio.Task | None = None
        self._down: asyncio.Future | None = None  # resolves when the runner is next seen down

    async def check(self, timeout: float = 0.5) -> bool:
        is_ready = getattr(self.handle, "is_ready", None)
        if is_ready is None:  # in the same process: up when this process is
            return self._seen(True, "")
        try:
            up = bool(await asyncio.wait_for(is_ready(timeout), timeout + 0.1))
            self._timeouts = 0
            return self._seen(up, "" if up else "its /readyz answers not ready")
        except TimeoutError:  # busy or gone: gone only when it happens twice running
            self._timeouts += 1
            if self._timeouts < 2 and self.up:
                return True
            return self._seen(False, f"no answer to /readyz within {timeout:g} s")
        except Exception as exc:  # refused, reset, no such host
            return self._seen(False, f"cannot reach it: {type(exc).__name__}")

    def _seen(self, up: bool, cause: str) -> bool:
        if up is not self.up and self.up is not None:
            log.warning("runner %s is %s", self.name, ("back" if self._was_up else "ready") if up else f"not ready: {cause}")
        self._was_up = self._was_up or up
        if not up and self._down is not None and not self._down.done():
            self._down.set_result(None)
        self.up, self.cause = up, cause
        return up

    def start(self, period_s: float) -> None:
        if period_s > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll(period_s))

    async def _poll(self, period_s: float) -> None:
        while True:
            await self.check(timeout=min(period_s / 2, 1.0))
            await asyncio.sleep(period_s)

    @property
    def polling(self) -> bool:
        return self._task is not None

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _refusal(self) -> RunnerBusy:
        return RunnerBusy(f"the {self.name} runner is not ready ({self.cause}); try again shortly")

    async def call(self, start: Callable[[], Awaitable[Any]]) -> Any:
        """What `start()` answers; RunnerBusy without starting it when the runner is known to
        be down, or as soon as the runner is seen down while it is in flight."""
        if not self.polling:
            return await start()
        if self.up is False:
            raise self._refusal()
        if self._down is None or self._down.done():
            self._down = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(start())
        await asyncio.wait((task, self._down), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        raise self._refusal()


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
    except aiohttp.ClientConnectionError as exc:  # refused again: the runner is gone
        raise RunnerBusy(f"the model's runner cannot be reached ({type(exc).__name__}); try again shortly") from None
    except BentoMLException as exc:
        if exc.error_code == 503:
            raise RunnerBusy("the model is busy: its queue is full; try again shortly") from None
        code = int(exc.error_code)
        said = str(exc).removeprefix("Error making request: ").removeprefix(f"{code}: ")[:200]  # its body, cut
        raise RunnerFailed(f"the model's runner answered {code}: {said}") from None
