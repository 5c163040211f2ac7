"""podman with the project's containers.conf (`make container-tools` writes it), for the
container tests and `make bench-coldstart`; and how each service runs in a container of its
own, from its image (`make containerize-split`: tiffin/deploy/container_bentos.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALL_IN_ONE_IMAGE = "localhost/tiffin-cpu:latest"  # make containerize
RUNNERS = ("tiffin-image", "tiffin-text-small", "tiffin-text-large", "tiffin-demand")
GATEWAY = "tiffin-gateway"


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "build/containers.conf")}
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=check)


def image(service: str, tag: str = "latest") -> str:
    """The image `make containerize-split SPLIT_TAG=tag` makes for `service`."""
    return f"localhost/{service}-cpu:{tag}"


def service_args(service: str, tag: str = "latest", port: int = 3000) -> list[str]:
    """`podman run` arguments after the options: `service` from its image, on `port`."""
    return ["-e", f"BENTOML_SERVE_SERVICE_NAME={service}", image(service, tag), "start-http-server", "--port", str(port)]


def runner_urls(port: int = 3000) -> str:
    """TIFFIN_RUNNER_URLS for a gateway whose runners answer at their own names."""
    return " ".join(f"{r}=http://{r}:{port}" for r in RUNNERS)
