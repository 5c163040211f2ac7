"""What the container tests share: an image built with a Makefile target (its build time and
size go to the measurements), and podman (tiffin/deploy/containers.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import MEASUREMENTS, ROOT
from tiffin.deploy.containers import podman

__all__ = ["make_image", "podman"]


def make_image(target: str, variable: str, image: str, model_store) -> str:
    """`make TARGET VARIABLE=image` with the test store's models; skips where podman cannot be had."""
    if shutil.which("podman") is None and os.environ.get("CI") != "true" and os.geteuid() != 0:
        pytest.skip(f"no podman and not root to install it: `make {target}` needs both")
    start = time.perf_counter()
    subprocess.run(
        ["make", "-s", target, f"{variable}={image}"], cwd=ROOT, check=True, env={**os.environ, "BENTOML_HOME": str(model_store)}
    )
    build_s = time.perf_counter() - start
    size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout.strip())
    MEASUREMENTS.append(f"container {image}: built in {build_s:.0f} s (make {target}), image {size / 1e9:.2f} GB")
    return image
