"""Small raw-ASGI helpers shared by the request guard, the hot path and the OIP routes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from tiffin.runtime.batcher import CLIENT_GONE

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyError(Exception):
    """The body cannot be taken: `status` (400/413) and a message saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_body(scope: dict[str, Any], receive: Receive, limit: int) -> bytes | None:
    """The whole request body, never more than `limit` bytes of it (a declared
    Content-Length over the limit is refused before reading; a chunked body is counted as
    it arrives). None when the client went away."""
    headers = dict(scope.get("headers", []))
    declared = headers.get(b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BodyError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise BodyError(413, f"body is {int(declared)} bytes; {scope.get('path', '')} accepts at most {limit}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise BodyError(413, f"body exceeds {limit} bytes, the limit of {scope.get('path', '')}")
        if not message.get("more_body"):
            return b"".join(chunks)


def watch_for_disconnect(receive: Receive) -> None:
    """Lets what this request queues learn that its client has left (`batcher.CLIENT_GONE`).
    Call it once the body is read: `receive` then has nothing left to give but the disconnect."""

    async def gone() -> bool:
        return (await receive())["type"] == "http.disconnect"

    CLIENT_GONE.set(gone)


GONE = 499  # nginx's "client closed request": the status of an answer nobody is left to read


async def send_json(send: Send, status: int, body: dict[str, Any], headers: tuple = ()) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": data})


def media_type(scope: dict[str, Any]) -> str:
    return media_of(content_type(scope))


def content_type(scope: dict[str, Any]) -> bytes:
    """The Content-Type header as sent, b"" when there is none."""
    return dict(scope.get("headers", [])).get(b"content-type", b"")


def media_of(content_type: bytes) -> str:
    """b"Image/PNG; q=1" -> "image/png"; "" when there is no Content-Type."""
    return content_type.split(b";")[0].strip().decode("latin-1").lower()
