"""Schemathesis against the published OpenAPI document (GET /docs.json): thousands of
generated requests, valid and not, to every endpoint. None may answer 5xx, every status and
body must be one the document declares, requests that break the schema must be refused, and
no worker may restart."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MEASUREMENTS

pytestmark = pytest.mark.integration
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection"


def test_generated_requests_to_every_endpoint(one_worker):
    workers = one_worker.worker_pids()
    command = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    out = subprocess.run(
        [command, "run", one_worker.url + "/docs.json", "--checks", CHECKS, "--max-examples", "700", "--seed", "20261202"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]
    generated = int(re.search(r"(\d+) generated", report).group(1))
    MEASUREMENTS.append(f"schemathesis: {generated} generated requests, 0 failures")
    assert generated >= 2000, report[-2000:]
    assert one_worker.worker_pids() == workers
