"""The gateway (services.gateway:Gateway): the public routes over the four runner services,
composed with bentoml.depends, answer as the all-in-one API does with the same models, over
the typed routes and the OIP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tiffin.deploy.serve import Server
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW

pytestmark = pytest.mark.integration
PNG = Path("services/examples/ankle-boot.png").read_bytes()
CALLS = [
    ("/classify_image", dict(files={"image": ("a.png", PNG, "image/png")})),
    ("/classify_text", dict(json={"text": "A witty, warm film.", "tier": "auto"})),
    ("/classify_text", dict(json={"text": "A witty, warm film.", "tier": "large"})),
    ("/predict_demand", dict(json=EXAMPLE_DEMAND_ROW)),
]


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gateway-batch")


@pytest.fixture(scope="module")
def gateway(server, batch_dir):  # after the main server fixture, so TIFFIN_*_MODEL pins are set
    with Server("services.gateway:Gateway", env={"TIFFIN_BATCH_DIR": str(batch_dir)}, ready_timeout=240) as srv:
        yield srv


def _same(a: dict, b: dict) -> None:
    a, b = dict(a), dict(b)
    assert a.pop("probabilities", None) == pytest.approx(b.pop("probabilities", None), abs=1e-5)
    a.pop("batch_size"), b.pop("batch_size")
    assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("path, kwargs", CALLS, ids=["image", "text-auto", "text-large", "demand"])
def test_typed_routes_answer_as_the_all_in_one_does(server, gateway, path, kwargs):
    answers = [httpx.post(s.url + path, timeout=60, **kwargs) for s in (server, gateway)]
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    _same(*(r.json() for r in answers))


def test_bulk_scoring_runs_over_the_runners(server, gateway, batch_dir):
    """The task the all-in-one serves (tests/integration/test_batch_jobs.py), on the
    deployable that BentoCloud runs: every row answered as the live route answers it."""
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(["a warm and witty film", "a dull, tedious mess"] * 20)]
    (batch_dir / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    job = {"input": "reviews.jsonl", "output": "answers.jsonl", "kind": "text", "tier": "large"}
    submitted = httpx.post(gateway.url + "/batch/submit", json=job, timeout=30)
    assert submitted.status_code == 200, submitted.text
    task = submitted.json()["task_id"]
    deadline = time.monotonic() + 120
    while (status := httpx.get(gateway.url + "/batch/status", params={"task_id": task}, timeout=10).json())["status"] in (
        "in_progress",
        "pending",
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status["status"] == "completed", status
    answers = {a["id"]: a for a in map(json.loads, (batch_dir / "answers.jsonl").read_text().splitlines())}
    assert sorted(answers) == sorted(r["id"] for r in rows)
    for row in rows[:2]:
        live = httpx.post(server.url + "/classify_text", json={"text": row["text"], "tier": "large"}, timeout=30).json()
        assert answers[row["id"]]["label"] == live["label"]
        assert answers[row["id"]]["probability"] == pytest.approx(live["probability"], abs=1e-5)


def test_bad_input_is_refused_before_any_runner_is_called(gateway):
    r = httpx.post(gateway.url + "/predict_demand", json={**EXAMPLE_DEMAND_ROW, "hr": 25}, timeout=30)
    assert r.status_code == 400 and "less than or equal to 23" in r.json()["error"]


def test_oip_over_the_runners(server, gateway):
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a fine film", "dull"]}]}
    answers = [httpx.post(s.url + "/v2/models/review-textcnn/infer", json=body, timeout=30) for s in (server, gateway)]
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    outputs = [{o["name"]: o["data"] for o in r.json()["outputs"]} for r in answers]
    assert outputs[0]["label"] == outputs[1]["label"]
    assert outputs[0]["probabilities"] == pytest.approx(outputs[1]["probabilities"], abs=1e-5)
    assert answers[1].json()["model_version"] == answers[0].json()["model_version"]


def test_a_runner_that_dies_turns_only_its_routes_away_until_it_is_back(gateway):
    """Last in this module: it kills the MiniLM runner's worker (BentoML starts another). Every
    probe answers within 2 s, the MiniLM routes answer 503 with Retry-After naming the runner
    (never 500, never a hang), the other models keep answering, and all is back once it is."""
    import time

    import psutil

    victims = [
        p for p in psutil.Process(gateway.proc.pid).children(recursive=True) if "tiffin-text-large" in " ".join(p.cmdline())
    ]
    assert victims
    for p in victims:
        p.kill()
    large, image = CALLS[2], CALLS[0]
    ready_codes, large_codes = [], []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready_codes.append(httpx.get(gateway.url + "/readyz", timeout=2).status_code)  # a hang fails here
        r = httpx.post(gateway.url + large[0], timeout=10, **large[1])
        large_codes.append(r.status_code)
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1" and "review-minilm runner is not ready" in r.json()["error"]
        assert httpx.post(gateway.url + image[0], timeout=10, **image[1]).status_code == 200
        if 503 in large_codes and large_codes[-1] == 200 and ready_codes[-1] == 200:
            break
        time.sleep(0.2)
    assert set(large_codes) <= {200, 503}, large_codes
    assert 503 in ready_codes and 503 in large_codes, (ready_codes, large_codes)
    assert large_codes[-1] == 200 and ready_codes[-1] == 200, "not back within 120 s"


def test_a_runner_that_answers_an_error_is_a_502_that_says_so(server):
    """A runner reached at the wrong URL (here the image runner where the TextCNN's should be,
    as a miswired manifest or a version skew would): its 400 is the gateway's 502 Bad Gateway
    naming the runner's answer, over the typed route and the OIP, never a bare 500; the
    other models answer as before."""
    with Server("services.image_runner:ImageRunner", ready_timeout=240) as wrong:
        env = {"TIFFIN_RUNNER_URLS": f"tiffin-text-small={wrong.url}"}
        with Server("services.gateway:Gateway", env=env, ready_timeout=240) as miswired:
            r = httpx.post(miswired.url + "/classify_text", json={"text": "a fine film", "tier": "small"}, timeout=30)
            assert r.status_code == 502 and "runner answered 400" in r.json()["error"], r.text
            body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a fine film"]}]}
            r = httpx.post(miswired.url + "/v2/models/review-textcnn/infer", json=body, timeout=30)
            assert r.status_code == 502 and "runner answered 400" in r.json()["error"], r.text
            path, kwargs = CALLS[0]
            assert httpx.post(miswired.url + path, timeout=60, **kwargs).status_code == 200
