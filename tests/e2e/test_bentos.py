"""`make build`'s bentos: the right services, models pinned by exact tag, pinned
dependencies, a generated Dockerfile, and nothing that should stay out."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest

from tests.conftest import ROOT
from tiffin import families
from tiffin.deploy import requirements
from tiffin.families import bikeshare, fashion, minilm, textcnn

BENTOML = [sys.executable, "-m", "bentoml"]


def _build(*args: str) -> str:
    out = subprocess.run([*BENTOML, "build", *args, "."], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return re.search(r'Successfully built Bento\(tag="([^"]+)"\)', out).group(1)


@pytest.fixture(scope="module")
def built(model_store) -> dict[str, bentoml.Bento]:
    subprocess.run([sys.executable, "-m", "tiffin.deploy.requirements", "build/requirements.txt"], cwd=ROOT, check=True)
    tags = {"all": _build()}
    for f in sorted((ROOT / "bentos").glob("*.yaml")):
        tags[f.stem] = _build("-f", str(f))
    return {k: bentoml.bentos.get(t) for k, t in tags.items()}


def _models(bento: bentoml.Bento) -> set[str]:
    return {str(m.tag) for svc in bento.info.services for m in svc.models}


def test_all_in_one_bento_pins_every_model_by_exact_tag(built):
    latest = {str(bentoml.models.get(f"{s.name}:latest").tag) for s in families.TRAINED}
    assert _models(built["all"]) == latest
    assert {s.name for s in built["all"].info.services} == {"tiffin"}  # every model in-process


def test_gateway_bento_composes_the_four_runner_services(built):
    latest = {str(bentoml.models.get(f"{s.name}:latest").tag) for s in families.TRAINED}
    assert _models(built["gateway"]) == latest
    assert {s.name for s in built["gateway"].info.services} == {
        "tiffin-gateway",
        "tiffin-image",
        "tiffin-text-small",
        "tiffin-text-large",
        "tiffin-demand",
    }


@pytest.mark.parametrize(
    "name, spec",
    [("image", fashion.FAMILY), ("text-small", textcnn.FAMILY), ("text-large", minilm.FAMILY), ("demand", bikeshare.FAMILY)],
)
def test_each_service_bento_carries_only_its_model(built, name, spec):
    assert _models(built[name]) == {str(bentoml.models.get(f"{spec.name}:latest").tag)}


@pytest.mark.parametrize("name", ["all", "gateway", "image"])
def test_bento_files(built, name):
    root = Path(built[name].path)
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert "env/docker/Dockerfile" in files
    assert not [f for f in files if f.startswith(("src/tests/", "src/bench/", "src/train/", "src/build/", "src/.venv/"))]
    assert not [f for f in files if "__pycache__" in f or f.endswith((".pt", ".pth", ".pkl", ".pyc"))]
    assert "src/services/api.py" in files and "src/tiffin/families/fashion.py" in files
    if name in ("all", "gateway"):  # the API serves the playground page from these
        assert {"src/tiffin/playground/static/index.html", "src/tiffin/playground/static/app.js"} <= files
    pinned = (root / "env/python/requirements.txt").read_text()
    for pin in requirements.pins():
        assert pin in pinned


@pytest.mark.parametrize("name, cuda", [("image", True), ("text-large", True), ("text-small", False), ("demand", False)])
def test_gpu_bentos_build_on_a_cuda_base(built, name, cuda):
    dockerfile = (Path(built[name].path) / "env/docker/Dockerfile").read_text()
    assert ("nvidia/cuda" in dockerfile) == cuda
