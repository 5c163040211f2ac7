import pytest

from tests.serving import Server


@pytest.fixture(scope="session")
def server(model_store):
    with Server() as srv:
        yield srv
