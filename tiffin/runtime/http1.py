"""A lean HTTP/1.1 listener for one handler: httptools' parser on an asyncio protocol.

The image hot path's own port: uvicorn's ASGI machinery costs ~30 µs of event-loop CPU per
request, a tenth of a request to the Fashion-MNIST CNN (docs/decisions/005-hot-path-listener.md).
What this keeps from a full server: keep-alive, pipelining (answers in request order),
chunked bodies, `Expect: 100-continue`, a body limit checked before reading, back-pressure
on slow readers, an idle timeout, and shutdown that finishes what was accepted.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httptools

log = logging.getLogger("tiffin")

# A connection with this many answers outstanding stops being read until they are written:
# pipelining cannot queue unbounded work.
MAX_PIPELINED = 64
_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    content_type: bytes  # as sent, b"" when absent
    body: bytes


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes = b"application/json"


Handler = Callable[[Request], Awaitable[Reply]]
# Answers the listener gives itself, before a request reaches the handler.
Refusal = Callable[[int, str], Reply]


def _head(reply: Reply, keep_alive: bool) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s" % (reply.status, _REASONS.get(reply.status, b"")),
        b"content-type: " + reply.content_type,
        b"content-length: %d" % len(reply.body),
    ]
    lines += [name + b": " + value for name, value in reply.headers]
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _Connection(asyncio.Protocol):
    def __init__(self, listener: Listener):
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # Answers in request order: [reply or None, keep_alive, is HEAD] per request.
        self.pending: collections.deque[list] = collections.deque()
        self.closing = self.write_paused = self.read_paused = False
        self.last_seen = self.loop.time()
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.content_type = b""
        self.chunks: list[bytes] = []
        self.size = 0
        self.refused = self.expect_continue = False

    # --- transport events ---
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.listener.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.listener.connections.discard(self)
        self.closing = True

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.loop.time()
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stop_reading()  # no protocol switch here: answer what came before, then close
        except httptools.HttpParserError as exc:
            if not self.refused:
                self._refuse(400, f"malformed HTTP request ({exc})")

    def pause_writing(self) -> None:
        self.write_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._flow()

    def _flow(self) -> None:
        if self.closing:  # reading stopped for good
            return
        stop = self.write_paused or len(self.pending) >= MAX_PIPELINED
        if stop != self.read_paused and not self.transport.is_closing():
            self.read_paused = stop
            (self.transport.pause_reading if stop else self.transport.resume_reading)()

    # --- parser events ---
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value
        elif name == b"content-length" and value.strip().isdigit() and int(value) > self.listener.max_body:
            self._refuse(413, f"body is {int(value)} bytes; this route accepts at most {self.listener.max_body}")
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        if self.expect_continue and not self.refused:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        self.size += len(body)
        if self.size > self.listener.max_body:
            self._refuse(413, f"body exceeds {self.listener.max_body} bytes, the limit of this route")
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.refused or self.closing:
            return
        if self.parser.should_upgrade():  # the parser hands what follows the headers (the body too) to the new protocol
            return self._refuse(
                400, "this port speaks HTTP/1.1 only: send the request without an Upgrade header (e.g. curl --http1.1)"
            )
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        request = Request(self.parser.get_method().decode("latin-1"), path, self.content_type, body)
        slot = [None, self.parser.should_keep_alive(), request.method == "HEAD"]
        self.pending.append(slot)
        self._flow()
        self.loop.create_task(self._answer(request, slot))

    # --- answers ---
    async def _answer(self, request: Request, slot: list) -> None:
        try:
            slot[0] = await self.listener.handler(request)
        except Exception as exc:  # the handler's own failure: a 500 for this request, the connection lives on
            log.exception("hot path handler failed")
            slot[0] = self.listener.refusal(500, f"the server failed on this request ({type(exc).__name__})")
        self._write_ready()

    def _write_ready(self) -> None:
        self.last_seen = self.loop.time()  # idle counts from the last answer too, not only the last bytes in
        while self.pending and self.pending[0][0] is not None:
            reply, keep_alive, head_only = self.pending.popleft()
            # closing (refused, upgrade asked, shutting down): the last answer says so and closes
            keep_alive = keep_alive and not self.listener.stopping and not (self.closing and not self.pending)
            if not self.transport.is_closing():
                self.transport.write(_head(reply, keep_alive) + (b"" if head_only else reply.body))
            if not keep_alive:
                self.pending.clear()
                self._stop_reading()
                self.transport.close()
                return
        self._flow()

    def _refuse(self, status: int, message: str) -> None:
        """Answer now, after what is pending, and close: the rest of the stream cannot be trusted."""
        self.refused = True
        self.pending.append([self.listener.refusal(status, message), False, False])
        self._stop_reading()
        self._write_ready()

    def _stop_reading(self) -> None:
        self.closing = True
        if not self.transport.is_closing():
            self.transport.pause_reading()
            self.read_paused = True
            if not self.pending:
                self.transport.close()

    def idle_for(self, now: float) -> float:
        return 0.0 if self.pending else now - self.last_seen


class Listener:
    """Serves `handler` on host:port inside the current event loop. SO_REUSEPORT lets every
    worker of a service bind the same port; the kernel spreads connections between them."""

    def __init__(self, handler: Handler, refusal: Refusal, host: str, port: int, *, max_body: int, idle_timeout_s: float = 30.0):
        self.handler, self.refusal, self.host, self.port = handler, refusal, host, port
        self.max_body, self.idle_timeout = max_body, idle_timeout_s
        self.connections: set[_Connection] = set()
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that name it, and
        # without it Nagle + delayed ACKs hold each small answer back ~40 ms.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        self._server = await asyncio.get_running_loop().create_server(lambda: _Connection(self), sock=sock, backlog=4096)
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("hot path listening on http://%s:%d/classify", self.host, self.port)

    async def _sweep(self) -> None:
        """Closes connections idle past the timeout (one timer for all, not one per request)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, self.idle_timeout / 2))
            now = loop.time()
            for conn in [c for c in self.connections if c.idle_for(now) > self.idle_timeout]:
                conn.transport.close()

    async def stop(self, grace_s: float = 15.0) -> None:
        """Stops accepting, answers what was accepted (each with `connection: close`), then closes."""
        if self._server is None:
            return
        self.stopping = True
        self._server.close()
        self._sweeper.cancel()
        for conn in list(self.connections):
            conn._stop_reading()
        loop = asyncio.get_running_loop()
        until = loop.time() + grace_s
        while self.connections and loop.time() < until:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.transport.abort()
