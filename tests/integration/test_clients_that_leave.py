"""Clients that hang up while their requests queue (a timeout, a closed connection) take their
work with them: the all-in-one API drops those requests before the model runs them and counts
them as `gone`, instead of running them and throwing the answers away."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import aiohttp
import pytest

from tests.integration.test_hot_path import metric
from tiffin.wire.catalog import EXAMPLE_TEXT, TEXT_LARGE

pytestmark = pytest.mark.integration
OUTCOMES = ("ok", "gone", "busy", "error", "bad_request")


def counts(url: str) -> dict[str, float]:
    return {o: metric(url, "tiffin_model_requests_total", model=TEXT_LARGE, outcome=o) for o in OUTCOMES}


def test_requests_whose_clients_hang_up_while_queued_are_dropped_not_run(server):
    body = json.dumps({"text": " ".join([EXAMPLE_TEXT] * 8), "tier": "large"}).encode()

    async def burst(n: int) -> list[int]:  # full MiniLM batches, so each worker knows their pace
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def post() -> int:
                async with http.post(server.url + "/classify_text", data=body, headers={"content-type": "application/json"}) as r:
                    return r.status

            return await asyncio.gather(*(post() for _ in range(n)))

    assert asyncio.run(burst(64)) == [200] * 64
    before = counts(server.url)
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        f"POST /classify_text HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    n = 200
    clients = [socket.create_connection((host, int(port))) for _ in range(n)]
    for client in clients:
        client.sendall(request)
    time.sleep(0.5)  # read and queued; the first batches run
    for client in clients:
        client.close()  # hang up without reading an answer
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        delta = {o: counts(server.url)[o] - before[o] for o in OUTCOMES}
        if sum(delta.values()) >= n:
            break
        time.sleep(0.2)
    print(delta)
    assert sum(delta.values()) == n, delta  # every request accounted for, once
    assert delta["error"] == delta["bad_request"] == 0, delta
    assert delta["gone"] >= n / 4, f"most of the queue should have been dropped: {delta}"
    assert delta["ok"] > 0, delta  # the batches running when they hung up end as usual
