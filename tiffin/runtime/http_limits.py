"""Deadlines and a connection cap for BentoML's uvicorn, which takes only `backlog` and
`timeout_keep_alive` from BentoML's configuration. Uvicorn on its own keeps a connection that
never sends a request for ever, restarts nothing while headers trickle in a byte at a time
(slowloris), waits without end for a body shorter than its Content-Length, and accepts
connections without bound.

`install()` (called when a tiffin service module is imported, before BentoML's worker builds
its `uvicorn.Config`) makes uvicorn's httptools protocol this subclass:
- a request's headers must be complete within TIFFIN_HTTP_HEADER_TIMEOUT_S (10 s) of its first
  byte, or of the connection opening: otherwise 408 and close (not restarted by each byte);
- its body within TIFFIN_HTTP_BODY_TIMEOUT_S (30 s) of the headers: otherwise the connection
  closes and the app sees a disconnect (408 when no answer has started);
- at most TIFFIN_HTTP_MAX_CONNECTIONS (1024) open connections per worker: the next one is
  answered 503 with Retry-After and closed;
- at most MAX_HEAD_BYTES (1 MiB) before the headers end: otherwise 431 and close, before the
  parser has buffered a 256 MB header or URL;
- a malformed request after pipelined good ones is refused (400) once they are answered,
  where uvicorn would close at once and drop their answers.
Idle keep-alive connections still close after uvicorn's keep-alive (5 s).
"""

from __future__ import annotations

import functools
from typing import Any

_INSTALLED = False
# What may arrive before a request's headers end (the front door then holds them to 8 KiB of
# URL and 16 KiB of headers): above the 256 KiB one read of the socket returns, so headers
# and the start of a body read together are never taken for a header bomb.
MAX_HEAD_BYTES = 1 << 20


def _reply(transport: Any, status: bytes, message: bytes, extra: bytes = b"") -> None:
    transport.write(
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n" + extra
        + b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
    )  # fmt: skip
    transport.close()


@functools.cache  # one class a process, built when the first config is
def _protocol_class():
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from tiffin.config import settings

    s = settings()

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: Any = None
        _waiting_for = ""  # "headers" or "body": what the deadline is for
        _head_bytes = 0  # bytes received while waiting for the headers

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > s.http_max_connections:
                self.connections.discard(self)
                message = b'{"error": "this worker has as many connections open as it takes; retry in a second"}'
                _reply(transport, b"503 Service Unavailable", message, b"retry-after: 1\r\n")
                return
            self._arm("headers", s.http_header_timeout_s)

        _refusal: str | None = None  # a bad request after good ones still being answered

        def data_received(self, data: bytes) -> None:
            if self._refusal is not None:
                return
            if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
                self._arm("headers", s.http_header_timeout_s)  # the first byte of the next request
            if self._waiting_for == "headers":
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:  # the parser would buffer all of it
                    self._disarm()
                    message = f'{{"error": "more than {MAX_HEAD_BYTES} bytes came before the headers ended"}}'.encode()
                    _reply(self.transport, b"431 Request Header Fields Too Large", message)
                    return
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                message = "Invalid HTTP request received."
                if self.cycle is not None and not self.cycle.response_complete:
                    # uvicorn would close now and drop the answers of the good requests before it
                    self._refusal = message
                    self._disarm()
                    self.transport.pause_reading()
                    return
                self.logger.warning(message)
                self.send_400_response(message)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            done = self.cycle is None or self.cycle.response_complete  # the last good request too
            if self._refusal is not None and done and not self.pipeline and not self.transport.is_closing():
                self._unset_keepalive_if_required()
                self.logger.warning(self._refusal)
                self.send_400_response(self._refusal)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            if self.parser.should_upgrade():
                return
            if any(k == b"content-length" and v.strip() not in (b"", b"0") for k, v in self.headers) or any(
                k == b"transfer-encoding" for k, _ in self.headers
            ):
                self._arm("body", s.http_body_timeout_s)

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self, what: str, seconds: float) -> None:
            self._disarm()
            self._waiting_for, self._head_bytes = what, 0
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            self._waiting_for = ""
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            what, self._deadline, self._waiting_for = self._waiting_for, None, ""
            if self.transport.is_closing():
                return
            if what == "body" and self.cycle is not None and self.cycle.response_started:
                self.transport.close()
                return
            limit = s.http_header_timeout_s if what == "headers" else s.http_body_timeout_s
            message = f'{{"error": "the request\'s {what} did not arrive within {limit:g} s"}}'.encode()
            _reply(self.transport, b"408 Request Timeout", message)

    return GuardedHttpToolsProtocol


def install() -> None:
    """Make every uvicorn.Config built in this process use the guarded protocol (unless it
    names its own), once."""
    global _INSTALLED
    if _INSTALLED:
        return
    try:
        import httptools  # noqa: F401
        import uvicorn
    except ImportError:  # no server here (the client alone)
        return
    _INSTALLED = True
    original = uvicorn.Config.__init__

    @functools.wraps(original)
    def init(self, app, *args, **kwargs):
        kwargs.setdefault("http", _protocol_class())
        original(self, app, *args, **kwargs)

    uvicorn.Config.__init__ = init
