"""tiffin's own client and CLI against a real server, over HTTP and gRPC.

The CLI runs as a subprocess: its gRPC stubs and tritonclient's define the same protobuf
package and cannot be imported into one process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def cli(server, *args: str, grpc: bool = False) -> subprocess.CompletedProcess:
    target = ["--grpc", server.grpc_target] if grpc else ["--url", server.url]
    return subprocess.run(
        [sys.executable, "-m", "tiffin.client.cli", *target, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("grpc", [False, True], ids=["http", "grpc"])
def test_cli_predicts_all_three(server, grpc):
    r = cli(server, "--json", "predict", "image", "services/examples/ankle-boot.png", grpc=grpc)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["label"] == "Ankle boot"
    r = cli(server, "--json", "predict", "text", "A joyless, tedious slog.", "--tier", "large", grpc=grpc)
    body = json.loads(r.stdout)
    assert body["model"].startswith("review-minilm:") and body["label"] in ("fresh", "rotten") and body["tier"] == "large"
    r = cli(server, "predict", "demand", "--hr", "8", "--mnth", "June", grpc=grpc)
    assert r.returncode == 0 and "bikers" in r.stdout and "bikeshare-mlp:" in r.stdout


@pytest.mark.parametrize("grpc", [False, True], ids=["http", "grpc"])
def test_cli_reports_server_errors(server, grpc):
    r = cli(server, "predict", "demand", "--hr", "30", grpc=grpc)
    assert r.returncode == 1
    assert "hr" in r.stderr and "less than or equal to 23" in r.stderr


def test_python_client_sync_and_async(server):
    import asyncio

    from tiffin.client import AsyncClient, Client

    with Client(server.url) as c:
        assert c.classify_image("services/examples/trouser.png").model.startswith("fashion-cnn:")
        assert c.predict_demand(hr=8).bikers >= 0

    async def run():
        async with AsyncClient(server.url) as c:
            return await asyncio.gather(*(c.classify_text(f"review {i}") for i in range(4)))

    assert all(p.tier == "small" for p in asyncio.run(run()))
