"""Bulk scoring as a BentoML task (tiffin/api/batch.py, `tiffin batch`): 2,000 items, the
worker killed midway, the job run again: every item is answered exactly once, as the live
route answers it. Paths outside TIFFIN_BATCH_DIR are refused with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import MEASUREMENTS, ROOT
from tiffin.deploy.serve import Server

pytestmark = pytest.mark.integration
N = 2000


@pytest.fixture(scope="module")
def batch_server(server, tmp_path_factory):  # after the main server fixture: the same pinned versions
    folder = tmp_path_factory.mktemp("batch")
    with Server(env={"TIFFIN_API_WORKERS": "1", "TIFFIN_BATCH_DIR": str(folder)}) as srv:
        yield srv, folder


def _cli(url: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tiffin.client.cli", "--url", url, "--json", "batch", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def _lines(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_job_killed_midway_resumes_with_every_item_answered_once(batch_server):
    srv, folder = batch_server
    words = ("a warm and witty film that earns its tears", "a dull, tedious mess with nothing to say")
    texts = {f"r{i:04d}": f"review {i}: " + " and ".join([words[i % 2]] * 4) for i in range(N)}
    (folder / "reviews.jsonl").write_text("".join(json.dumps({"id": k, "text": t}) + "\n" for k, t in texts.items()))
    job = {"input": "reviews.jsonl", "output": "out/answers.jsonl", "kind": "text", "tier": "large"}
    assert httpx.post(srv.url + "/batch/submit", json=job, timeout=30).status_code == 200
    out = folder / "out" / "answers.jsonl"
    deadline = time.monotonic() + 300
    while _lines(out) < 256 and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in srv.worker_pids():  # SIGKILL mid-job: no chance to finish a write
        subprocess.run(["kill", "-9", str(pid)], check=False)
    before = _lines(out)
    assert 0 < before < N, f"{before} answered when the worker was killed: resize the job"

    # BentoML starts a new worker; the same job run again resumes the same output
    while time.monotonic() < deadline:
        try:
            if httpx.get(srv.url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.25)
    started = time.perf_counter()
    run = _cli(srv.url, "reviews.jsonl", "out/answers.jsonl", "--kind", "text", "--tier", "large", "--local-dir", str(folder))
    took = time.perf_counter() - started
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["id"] for row in rows) == sorted(texts)  # none lost, none twice
    assert summary["items"] == N and summary["resumed_from"] >= before
    assert summary["resumed_from"] + summary["scored"] == N and summary["failed"] == 0
    MEASUREMENTS.append(
        f"batch job: {N} MiniLM texts, worker killed at {before} answered; resumed from {summary['resumed_from']}, "
        f"{summary['scored']} scored in {took:.1f} s ({summary['scored'] / took:.0f} items/s)"
    )
    # the answers are the live route's
    for row in rows[:: N // 4]:
        live = httpx.post(srv.url + "/classify_text", json={"text": texts[row["id"]], "tier": "large"}, timeout=30).json()
        assert row["label"] == live["label"] and row["probability"] == pytest.approx(live["probability"], abs=1e-5)


def test_images_and_refusals(batch_server):
    srv, folder = batch_server
    pictures = folder / "pictures"
    pictures.mkdir()
    png = (ROOT / "services/examples/ankle-boot.png").read_bytes()
    for i in range(20):
        (pictures / f"shoe-{i:02d}.png").write_bytes(png)
    (pictures / "broken.png").write_bytes(b"not a picture")
    run = _cli(srv.url, "pictures", "pictures.jsonl", "--kind", "image")
    assert run.returncode == 0, run.stderr
    rows = {r["id"]: r for r in map(json.loads, (folder / "pictures.jsonl").read_text().splitlines())}
    assert len(rows) == 21 and all(rows[f"shoe-{i:02d}.png"]["label"] == "Ankle boot" for i in range(20))
    assert "error" in rows["broken.png"] and json.loads(run.stdout)["failed"] == 1
    # a wrong field is refused before a task is queued (BentoML would queue any body)
    r = httpx.post(srv.url + "/batch/submit", json={"input": "a", "output": "b", "kind": "video"}, timeout=10)
    assert r.status_code == 400 and "kind" in r.json()["error"], r.text
    # outside the folder: the task fails with a 4xx that says why, and the CLI says so
    run = _cli(srv.url, "../../etc/passwd", "x.jsonl")
    assert run.returncode == 1 and "outside the batch folder" in run.stderr and "HTTP 400" in run.stderr
