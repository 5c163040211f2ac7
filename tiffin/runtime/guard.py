"""An ASGI middleware in front of the typed API: it refuses, before any parsing, a body
of the wrong content type (415) or over the route's size limit (413).

Stock BentoML reads any body whole and parses by a default serde, so a 200 MB JSON
body is accepted and a non-JSON body can surface as a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tiffin.runtime.asgi import BodyError, Message, Receive, Send, media_type, read_body, send_json

Scope = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    content_type: str  # required media type, e.g. "application/json"
    max_bytes: int
    # For multipart routes: the form fields accepted, all required. BentoML answers an
    # unexpected binary field with a 500 (it tries to read it as UTF-8 JSON).
    form_fields: frozenset[str] = frozenset()


async def send_error(send: Send, status: int, message: str) -> None:
    await send_json(send, status, {"error": message})


class RequestGuard:
    def __init__(self, app: Callable, rules: dict[str, Rule]):
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self.rules.get(scope.get("path", "")) if scope["type"] == "http" and scope.get("method") == "POST" else None
        if rule is None:
            return await self.app(scope, receive, send)
        media = media_type(scope)
        if media != rule.content_type:
            return await send_error(send, 415, f"{scope['path']} takes {rule.content_type}, got {media or 'no Content-Type'}")
        # Read the body here, bounded, then hand it on.
        try:
            body = await read_body(scope, receive, rule.max_bytes)
        except BodyError as exc:
            return await send_error(send, exc.status, str(exc))
        if body is None:
            return
        if rule.form_fields:
            problem = await self._form_problem(scope, body, rule.form_fields)
            if problem:
                return await send_error(send, 400, problem)
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _form_problem(scope: Scope, body: bytes, expected: frozenset[str]) -> str | None:
        from starlette.requests import Request

        request = Request(scope, _replay(body, None))
        try:
            form = await request.form()
        except Exception as exc:  # starlette raises several types for a malformed form
            return f"the multipart body could not be parsed: {exc}"
        try:
            names = set(form.keys())
            wanted = ", ".join(sorted(expected))
            if names - expected:
                return f"unexpected form field(s) {', '.join(sorted(names - expected))}; send only: {wanted}"
            if expected - names:
                return f"missing form field(s) {', '.join(sorted(expected - names))}; send: {wanted}"
            texts = sorted(n for n in names if isinstance(form[n], str))
            if texts:  # BentoML would take a text field as a URL to fetch: never let it
                return f"form field(s) {', '.join(texts)} must be file uploads (curl -F name=@file), not text"
            return None
        finally:
            await form.close()


def _replay(body: bytes, receive: Receive | None) -> Receive:
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replayed
