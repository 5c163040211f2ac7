"""The payload log: every answered typed request as one JSON line (id, model version, input
digest, answer, latency; the input itself when sampled), bounded on disk by rotation, and
`tiffin logs export` turning it into data sets."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tiffin.deploy.serve import Server
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW

pytestmark = pytest.mark.integration
PNG = Path("services/examples/ankle-boot.png").read_bytes()


@pytest.fixture(scope="module")
def logged(server, tmp_path_factory):  # after the main server fixture, so TIFFIN_*_MODEL pins are set
    folder = tmp_path_factory.mktemp("payload")
    env = {
        "TIFFIN_PAYLOAD_LOG": str(folder / "payload.jsonl"),
        "TIFFIN_PAYLOAD_SAMPLE": "1",
        "TIFFIN_PAYLOAD_LOG_MB": "1",
        "TIFFIN_PAYLOAD_LOG_FILES": "1",
        "TIFFIN_API_WORKERS": "1",
    }
    with Server(env=env) as srv:
        yield srv, folder


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(folder.glob("payload-w*.jsonl*")) for line in p.read_text().splitlines()]


def _wait_for(folder: Path, n: int) -> list[dict]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        records = _records(folder)
        if len(records) >= n:
            return records
        time.sleep(0.1)
    return _records(folder)


def test_answers_are_logged_and_export_as_data_sets(logged, tmp_path):
    srv, folder = logged
    answers = [
        httpx.post(srv.url + "/classify_image", files={"image": ("a.png", PNG, "image/png")}, timeout=30),
        httpx.post(srv.url + "/classify_text", json={"text": "a warm, witty film"}, headers={"x-request-id": "r-42"}, timeout=30),
        httpx.post(srv.url + "/predict_demand", json=EXAMPLE_DEMAND_ROW, timeout=30),
        httpx.post(srv.url + "/predict_demand", json={**EXAMPLE_DEMAND_ROW, "hr": 99}, timeout=30),  # a 400: not logged
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 400]
    records = _wait_for(folder, 3)
    assert [r["route"] for r in records] == ["/classify_image", "/classify_text", "/predict_demand"]
    image, text, demand = records
    assert image["input_sha256"] == hashlib.sha256(PNG).hexdigest() and image["answer"] == answers[0].json()
    assert text["id"] == "r-42" and text["model"] == answers[1].json()["model"] and text["latency_ms"] > 0
    out = tmp_path / "data"
    files = [str(p) for p in sorted(folder.glob("payload-w*.jsonl*"))]
    cli = subprocess.run(
        [sys.executable, "-m", "tiffin.client.cli", "logs", "export", *files, "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "images: 1" in cli.stdout and "texts: 1" in cli.stdout and "demand: 1" in cli.stdout
    [row] = [json.loads(line) for line in (out / "images.jsonl").read_text().splitlines()]
    assert (out / row["file"]).read_bytes() == PNG and row["label"] == "Ankle boot"
    [row] = [json.loads(line) for line in (out / "demand.jsonl").read_text().splitlines()]
    assert row["hr"] == EXAMPLE_DEMAND_ROW["hr"] and row["bikers"] == answers[2].json()["bikers"]


def test_the_log_stays_within_its_bound_on_disk(logged):
    srv, folder = logged
    text = {"text": "a long and winding review " * 150}  # ~4 KB, ~5.5 KB a line with its input

    async def flood():
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
            for _ in range(10):
                await asyncio.gather(*(client.post("/classify_text", json=text) for _ in range(40)))

    asyncio.run(flood())
    _wait_for(folder, 400)
    sizes = [p.stat().st_size for p in folder.glob("payload-w*.jsonl*")]
    assert len(sizes) == 2 and sum(sizes) <= 2 * 1024 * 1024 + 8 * 1024, sizes  # 1 MB x (1 + 1 kept file)
