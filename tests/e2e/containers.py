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


def make_image(target: str, setting: str, images: tuple[str, ...] | str, model_store) -> dict[str, float]:
    """`make TARGET SETTING` with the test store's models: each image's size in GB (printed
    with the build time); skips where podman cannot be had."""
    if shutil.which("podman") is None and os.environ.get("CI") != "true" and os.geteuid() != 0:
        pytest.skip(f"no podman and not root to install it: `make {target}` needs both")
    start = time.perf_counter()
    subprocess.run(["make", "-s", target, setting], cwd=ROOT, check=True, env={**os.environ, "BENTOML_HOME": str(model_store)})
    build_s = time.perf_counter() - start
    sizes = {}
    for image in (images,) if isinstance(images, str) else images:
        sizes[image] = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout.strip()) / 1e9
    listed = ", ".join(f"{image} {gb:.2f} GB" for image, gb in sizes.items())
    MEASUREMENTS.append(f"make {target}: built in {build_s:.0f} s: {listed}")
    return sizes
