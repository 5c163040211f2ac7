"""Test set-up: a model store of quick-trained models, made once per session.

The store lives in its own BENTOML_HOME so tests never touch the user's models; set
TIFFIN_TEST_STORE to reuse one between runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Must be set before bentoml is imported anywhere in this process.
STORE = Path(os.environ.get("TIFFIN_TEST_STORE") or tempfile.mkdtemp(prefix="tiffin-test-store-"))
os.environ["BENTOML_HOME"] = str(STORE)
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("TIFFIN_DEVICE", "cpu")


@pytest.fixture(scope="session")
def model_store() -> Path:
    """Quick-train every model missing from the test store (all of them, the first time)."""
    subprocess.run(
        [sys.executable, "-m", "train.all", "--quick", "--missing"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "BENTOML_HOME": str(STORE)},
    )
    return STORE


# Figures tests measure on the way (build times, image sizes, start-up times), printed
# at the end of the run so CI logs carry them.
MEASUREMENTS: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


def stored_versions(home: Path, name: str) -> list[dict]:
    """`tiffin models list` in the store at `home`: the versions of `name`, newest first."""
    import json

    env = {**os.environ, "BENTOML_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "tiffin.client.cli", "--json", "models", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(row["versions"] for row in json.loads(out) if row["name"] == name)


@pytest.fixture(scope="session")
def version_home(model_store, tmp_path_factory) -> Path:
    """A BENTOML_HOME of its own for the version tests (aliases, promotion, swaps, archives),
    so their moves never change what the other tests serve: the test store's models
    (hard-linked; each `latest` pointer copied, as saving a version rewrites it) plus two
    more fashion-cnn versions, one good (seed 1) and one trained on shuffled labels."""
    from tiffin import store

    home = store.linked_home(model_store, tmp_path_factory.mktemp("version-home"))
    env = {**os.environ, "BENTOML_HOME": str(home)}
    for extra in (["--seed", "1"], ["--shuffle-labels"]):
        subprocess.run([sys.executable, "-m", "train.image", "--quick", *extra], cwd=ROOT, check=True, env=env)
    return home
