"""The bench's HTTP load generator (wrk, bench/wrk.py) sends the body and headers it is
given, tells answers from failures, and reports its own CPU time."""

from __future__ import annotations

import pytest

from bench import wrk
from bench.run import OCTET, uvicorn_app

pytestmark = pytest.mark.integration


def test_wrk_sends_the_body_and_counts_failures(model_store):
    # The seed baseline reshapes the body into one 28x28 image: only 784 bytes can succeed.
    with uvicorn_app("bench.baselines.seed:app", {"BENTOML_HOME": str(model_store)}) as (url, _):
        good, cpu = wrk.closed_loop("seed", wrk.HttpLoad(url + "/classify", bytes(784), OCTET), 4, 1, warmup=0)
        short, _ = wrk.closed_loop("seed", wrk.HttpLoad(url + "/classify", bytes(783), OCTET), 4, 1, warmup=0)
    assert good["errors"] == 0 and good["requests"] > 20 and good["rps"] > 20, good
    assert 0 < good["p50_ms"] <= good["p99_ms"], good
    assert 0 < cpu < 2, cpu  # its own CPU seconds, for a 1 s run on one thread
    assert short["rps"] == 0 and short["errors"] == short["requests"] > 0, short
