"""BentoML's uvicorn with tiffin's deadlines and connection cap (tiffin/runtime/http_limits.py),
on a real all-in-one server with short limits: a request whose headers trickle in a byte at a
time, a connection that never sends anything, a body shorter than its Content-Length, and
more connections than a worker takes are all ended; good requests, kept-alive and pipelined,
are not."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from tiffin.deploy.serve import Server

pytestmark = pytest.mark.integration
LIMITS = {
    "TIFFIN_API_WORKERS": "1",
    "TIFFIN_HTTP_HEADER_TIMEOUT_S": "1",
    "TIFFIN_HTTP_BODY_TIMEOUT_S": "1",
    "TIFFIN_HTTP_MAX_CONNECTIONS": "24",
}


_TEXT = b'{"text": "A warm film.", "tier": "small"}'
# one good request as bytes on the wire, for pipelining
GOOD = b"POST /classify_text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_TEXT),
    _TEXT,
)


@pytest.fixture(scope="module")
def limited(model_store):
    with Server(env=LIMITS, ready_timeout=240) as srv:
        yield srv


def _connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    start, data = time.monotonic(), b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - start


def test_headers_that_trickle_in_are_cut_off_at_the_deadline(limited):
    sock = _connect(limited)
    start = time.monotonic()
    sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
    sock.settimeout(0.25)
    answer = b""
    while time.monotonic() - start < 5:
        try:
            sock.sendall(b"X")  # one byte of a header name every 0.25 s: never complete
            if chunk := sock.recv(65536):
                answer += chunk
            else:
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    took = time.monotonic() - start
    assert took < 2.5, f"a trickling request held its connection for {took:.1f} s"
    assert answer.startswith(b"HTTP/1.1 408") and b"headers did not arrive within 1 s" in answer


def test_a_connection_that_sends_nothing_is_closed(limited):
    sock = _connect(limited)
    answer, took = _read_until_closed(sock)
    assert took < 2.5 and answer.startswith(b"HTTP/1.1 408")


def test_a_body_shorter_than_its_length_is_cut_off(limited):
    sock = _connect(limited)
    sock.sendall(b'POST /classify_text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"te')
    answer, took = _read_until_closed(sock)
    assert took < 2.5, took
    assert answer.startswith(b"HTTP/1.1 408") and b"body did not arrive" in answer


def test_past_the_connection_cap_a_worker_answers_503_and_recovers(limited):
    held = [_connect(limited) for _ in range(30)]
    time.sleep(0.3)
    refused = 0
    for sock in held:
        sock.settimeout(0.2)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if data.startswith(b"HTTP/1.1 503"):
            assert b"retry-after: 1" in data.lower()
            refused += 1
    assert refused == 30 - 24 + 1 or refused == 30 - 24, refused  # /readyz's poller may hold one
    for sock in held:
        sock.close()
    time.sleep(0.5)
    assert httpx.get(limited.url + "/livez", timeout=10).status_code == 200


def test_kept_alive_and_pipelined_requests_are_answered(limited):
    with httpx.Client(base_url=limited.url, timeout=10) as client:
        for _ in range(3):  # the same connection, each pause under the deadlines
            assert client.post("/classify_text", json={"text": "A warm film.", "tier": "small"}).status_code == 200
            time.sleep(0.6)
    sock = _connect(limited)
    sock.sendall(GOOD * 3 + b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer, _ = _read_until_closed(sock)
    assert answer.count(b"HTTP/1.1 200") == 4, answer[:500]


def test_good_pipelined_requests_are_answered_before_a_bad_one_is_refused(limited):
    sock = _connect(limited)
    sock.sendall(GOOD * 2 + b"NOT HTTP AT ALL\r\n\r\n")
    answer, _ = _read_until_closed(sock)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)  # each answer follows the last body's bytes
    assert statuses == [b"200", b"200", b"400"], answer[:800]


@pytest.mark.parametrize("head", [b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ", b"GET /livez?q="])
def test_a_header_or_url_bomb_is_refused_before_it_is_buffered(limited, head):
    sock = _connect(limited)
    sock.sendall(head)
    sent, answer = 0, b""
    try:
        while sent < 64 << 20:  # 64 MB of one header value (or URL), never ended
            sock.sendall(b"a" * 65536)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        answer = sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        pass
    assert sent < 8 << 20, f"{sent} bytes taken before the headers ended"
    assert not answer or answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert httpx.get(limited.url + "/livez", timeout=10).status_code == 200
