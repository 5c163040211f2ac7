import os

import bentoml
import pytest

from tests.conftest import MEASUREMENTS
from tiffin import config, families
from tiffin.deploy.serve import Server


@pytest.fixture(scope="session")
def server(model_store):
    # Pin each runner to the version that is newest now, through the same environment
    # variables a user would set, so in-process comparisons load exactly what is served
    # even if a test adds a version later.
    pins = {spec.env: str(bentoml.models.get(f"{spec.name}:latest").tag) for spec in families.TRAINED}
    os.environ.update(pins)
    config.settings.cache_clear()  # this process reads the pins too
    with Server(env=pins) as srv:
        MEASUREMENTS.append(f"bentoml serve services.api:Tiffin start -> /readyz 200: {srv.ready_seconds:.1f} s")
        yield srv
    for name in pins:
        os.environ.pop(name, None)
    config.settings.cache_clear()


@pytest.fixture(scope="session")
def one_worker(server):
    """The all-in-one API with one worker process: every request meets the same event loop and
    batchers (with several workers the kernel picks the worker a connection lands in)."""
    with Server(env={"TIFFIN_API_WORKERS": "1"}) as srv:
        yield srv
