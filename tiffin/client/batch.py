"""`tiffin batch INPUT OUTPUT`: run the server's bulk-scoring task (tiffin/api/batch.py)
through BentoML's task API (submit, status, get) and wait for it, showing progress when the
output file is visible here too (`--local-dir`: where the server's TIFFIN_BATCH_DIR is on
this machine). Run it again after a crash: the server resumes the same output file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tiffin.client.core import ServerError

DONE = ("completed", "failed", "canceled")


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0


def _error(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text
    if isinstance(body, list) and body:  # BentoML 1.4 wraps a task's 4xx error in a list
        body = body[0]
    return body.get("error", r.text) if isinstance(body, dict) else r.text


def run(
    url: str,
    input: str,
    output: str,
    kind: str = "text",
    tier: str = "small",
    *,
    local_dir: str | None = None,
    poll_s: float = 0.5,
    timeout: float = 30,
) -> dict[str, Any]:
    """The job's summary once it has finished; ServerError when it is refused or fails."""
    with httpx.Client(base_url=url, timeout=timeout) as http:
        r = http.post("/batch/submit", json={"input": input, "output": output, "kind": kind, "tier": tier})
        if r.status_code >= 400:
            raise ServerError(f"HTTP {r.status_code}: {_error(r)}")
        task = r.json()["task_id"]
        shown = -1
        while True:
            r = http.get("/batch/status", params={"task_id": task})
            if r.status_code >= 400:
                raise ServerError(f"HTTP {r.status_code}: {_error(r)}")
            status = r.json()["status"]
            if local_dir:
                answered = _lines(Path(local_dir) / output)
                if answered != shown:
                    print(f"\r{output}: {answered} answered", end="", file=sys.stderr, flush=True)
                    shown = answered
            if status in DONE:
                break
            time.sleep(poll_s)
        if local_dir:
            print(file=sys.stderr)
        r = http.get("/batch/get", params={"task_id": task})
        if status != "completed" or r.status_code >= 400:
            raise ServerError(f"batch task {task} {status}: HTTP {r.status_code}: {_error(r)}")
        return {"task_id": task, **r.json()}
