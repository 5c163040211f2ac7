"""The hot path's HTTP/1.1 listener over real sockets: what clients rely on from a server
(keep-alive, pipelining in order, chunked bodies, 100-continue, limits, closing) holds."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tiffin.deploy.serve import free_port
from tiffin.runtime.http1 import Listener, Reply, Request


def refusal(status: int, message: str) -> Reply:
    return Reply(status, json.dumps({"error": message}).encode())


async def echo(request: Request) -> Reply:
    """Answers with what it got; a body b"sleep:<s>" answers after s seconds, b"boom" fails."""
    if request.body.startswith(b"sleep:"):
        await asyncio.sleep(float(request.body[6:]))
    if request.body == b"boom":
        raise RuntimeError("handler bug")
    return Reply(
        200,
        json.dumps(
            {"method": request.method, "path": request.path, "type": request.content_type.decode(), "body": request.body.decode()}
        ).encode(),
    )


def serving(test, **options):
    """Runs `test(port, listener)` against a listener on a free port, in one event loop."""

    async def go():
        listener = Listener(echo, refusal, "127.0.0.1", free_port(), max_body=1000, **options)
        await listener.start()
        try:
            return await test(listener.port, listener)
        finally:
            await listener.stop(grace_s=1)

    return asyncio.run(go())


async def exchange(port: int, data: bytes, until_closed: bool = True, read_s: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if until_closed:
        out = await asyncio.wait_for(reader.read(), read_s)
    else:
        out = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), read_s):
                out += chunk
        except TimeoutError:
            pass
    writer.close()
    return out


def post(body: bytes, path: str = "/classify", extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s" % (path.encode(), len(body), extra, body)


def answers(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Splits a byte stream of responses (each with content-length) into (status, headers, body)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        size = int(headers.get("content-length", 0))
        out.append((int(lines[0].split()[1]), headers, rest[:size]))
        raw = rest[size:]
    return out


def test_keep_alive_with_an_ordinary_client():
    async def test(port, _):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            first = await client.post("/a/classify?x=1", content=b"one", headers={"content-type": "Image/PNG; q=1"})
            second = await client.post("/b", content=b"two")
        return first, second

    first, second = serving(test)
    assert first.json() == {"method": "POST", "path": "/a/classify", "type": "Image/PNG; q=1", "body": "one"}
    assert second.json()["body"] == "two" and second.headers.get("connection") != "close"


def test_pipelined_requests_are_answered_in_order_though_they_finish_out_of_order():
    async def test(port, _):
        return await exchange(port, post(b"sleep:0.3") + post(b"sleep:0") + post(b"third", extra=b"Connection: close\r\n"))

    got = answers(serving(test))
    assert [json.loads(body)["body"] for _, _, body in got] == ["sleep:0.3", "sleep:0", "third"]
    assert got[-1][1]["connection"] == "close"


def test_a_chunked_body_arrives_whole():
    async def test(port, _):
        head = b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        return await exchange(port, head + b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")

    [(status, _, body)] = answers(serving(test))
    assert status == 200 and json.loads(body)["body"] == "abcdefg"


def test_expect_100_continue_is_answered_before_the_body_is_sent():
    async def test(port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        writer.write(b"body")
        rest = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        return interim, rest

    interim, rest = serving(test)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    assert json.loads(answers(rest)[0][2])["body"] == "body"


def test_a_declared_body_over_the_limit_is_refused_unread_and_the_connection_closed():
    async def test(port, _):
        return await exchange(port, b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)

    [(status, headers, body)] = answers(serving(test))
    assert status == 413 and headers["connection"] == "close" and "at most 1000" in json.loads(body)["error"]


def test_a_chunked_body_over_the_limit_is_refused():
    async def test(port, _):
        head = b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        return await exchange(port, head + b"3e8\r\n" + b"x" * 1000 + b"\r\n1\r\nx\r\n0\r\n\r\n")

    [(status, _, body)] = answers(serving(test))
    assert status == 413 and "exceeds 1000 bytes" in json.loads(body)["error"]


def test_garbage_gets_400_after_the_answers_before_it():
    async def test(port, _):
        return await exchange(port, post(b"fine") + b"NOT HTTP AT ALL\r\n\r\n")

    got = answers(serving(test))
    assert [status for status, _, _ in got] == [200, 400]
    assert "malformed HTTP request" in json.loads(got[1][2])["error"] and got[1][1]["connection"] == "close"


def test_an_upgrade_request_gets_a_400_that_says_so():
    async def test(port, _):  # what `curl --http2` sends over plain HTTP
        return await exchange(
            port,
            b"POST /classify HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 2\r\n\r\nhi",
        )

    [(status, headers, body)] = answers(serving(test))
    assert status == 400 and headers["connection"] == "close" and "without an Upgrade header" in json.loads(body)["error"]


def test_a_handler_failure_is_a_500_and_the_connection_lives_on():
    async def test(port, _):
        return await exchange(port, post(b"boom") + post(b"after", extra=b"Connection: close\r\n"))

    got = answers(serving(test))
    assert [status for status, _, _ in got] == [500, 200]
    assert "RuntimeError" in json.loads(got[0][2])["error"]


def test_head_gets_headers_only():
    async def test(port, _):
        return await exchange(port, b"HEAD /classify HTTP/1.1\r\nHost: x\r\n\r\n" + post(b"next", extra=b"Connection: close\r\n"))

    raw = serving(test)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: " in head
    assert json.loads(answers(rest)[0][2])["body"] == "next"  # no stray body before the next answer


def test_http_1_0_closes_after_its_answer():
    async def test(port, _):
        return await exchange(port, b"POST /classify HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")

    [(status, headers, _)] = answers(serving(test))
    assert status == 200 and headers["connection"] == "close"


def test_idle_connections_are_closed():
    async def test(port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(b"x"))
        first = await reader.readuntil(b'"x"}')
        rest = await asyncio.wait_for(reader.read(), 3)  # b"" once the server closes
        writer.close()
        return first, rest

    first, rest = serving(test, idle_timeout_s=0.4)
    assert first.startswith(b"HTTP/1.1 200") and rest == b""


def test_idle_time_counts_from_the_last_answer():
    async def test(port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(b"sleep:0.6"))  # answered after longer than the idle timeout
        first = await reader.readuntil(b'"sleep:0.6"}')
        await asyncio.sleep(0.25)  # past a sweep of the idle connections, within the timeout
        writer.write(post(b"again", extra=b"Connection: close\r\n"))
        rest = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        return first, rest

    first, rest = serving(test, idle_timeout_s=0.4)
    assert first.startswith(b"HTTP/1.1 200") and json.loads(answers(rest)[0][2])["body"] == "again"


def test_stop_answers_what_was_accepted_then_closes():
    async def test(port, listener):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(b"sleep:0.3"))
        await writer.drain()
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(listener.stop(grace_s=3))
        raw = await asyncio.wait_for(reader.read(), 3)
        await stopping
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        return raw

    [(status, headers, body)] = answers(serving(test))
    assert status == 200 and headers["connection"] == "close" and json.loads(body)["body"] == "sleep:0.3"
