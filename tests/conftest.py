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
