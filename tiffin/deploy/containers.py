"""podman with the project's containers.conf (`make container-tools` writes it), for the
container tests and `make bench-coldstart`; and how each service of the gateway image is run
in a container of its own (bentos/container/tiffin-gateway-cpu.yaml)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALL_IN_ONE_IMAGE = "localhost/tiffin-cpu:latest"  # make containerize
GATEWAY_IMAGE = "localhost/tiffin-gateway-cpu:latest"  # make containerize-gateway
RUNNERS = ("tiffin-image", "tiffin-text-small", "tiffin-text-large", "tiffin-demand")


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "build/containers.conf")}
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=check)


def service_args(service: str, port: int = 3000) -> list[str]:
    """`podman run` arguments after the options, for one service of the gateway image."""
    return ["-e", f"BENTOML_SERVE_SERVICE_NAME={service}", GATEWAY_IMAGE, "start-http-server", "--port", str(port)]


def depends(port: int = 3000) -> str:
    """BENTOML_SERVE_DEPENDS for a gateway whose runners answer at their own names."""
    return " ".join(f"{r}=http://{r}:{port}" for r in RUNNERS)
