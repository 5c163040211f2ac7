"""The gateway and its four runners, each in a container of its own image on a podman network of
this test's own, wired by BentoML's own mechanism for services deployed apart
(each image's `start-http-server`; the gateway's runners are `bentoml.depends(url=...)`
through TIFFIN_RUNNER_URLS; no proxy of ours). Every endpoint answers; a runner container stopped
turns only its model's routes to 503 + Retry-After, and started again brings them back with
the gateway left running. Prints each image's size and start -> ready."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import MEASUREMENTS, ROOT
from tests.e2e.containers import make_image, podman
from tiffin.deploy.containers import GATEWAY, RUNNERS, image, runner_urls, service_args
from tiffin.deploy.serve import free_ports
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW

TAG = "test"
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
PNG = (ROOT / "services/examples/ankle-boot.png").read_bytes()


@pytest.fixture(scope="module")
def images(model_store) -> dict[str, float]:
    """The gateway's image and each runner's; every runner's stays within 0.9 GB."""
    sizes = make_image("containerize-split", f"SPLIT_TAG={TAG}", tuple(image(s, TAG) for s in (GATEWAY, *RUNNERS)), model_store)
    for service in RUNNERS:
        assert sizes[image(service, TAG)] <= 0.9, sizes
    return sizes


def _ready(url: str, seconds: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready in {seconds} s")


@pytest.fixture(scope="module")
def split(images):
    (port,) = free_ports(1)
    net, names = f"tiffin-net-{port}", {r: f"{r}-{port}" for r in (*RUNNERS, GATEWAY)}
    podman("network", "create", net)
    start = time.perf_counter()
    try:
        for runner in RUNNERS:
            podman(
                "run", "-d", "--name", names[runner], "--network", net, "--network-alias", runner,
                *service_args(runner, TAG),
            )  # fmt: skip
        podman(
            "run", "-d", "--name", names[GATEWAY], "--network", net, "-p", f"127.0.0.1:{port}:3000",
            "-e", f"TIFFIN_RUNNER_URLS={runner_urls()}", *service_args(GATEWAY, TAG),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _ready(url, 240)
        except TimeoutError:
            logs = {n: podman("logs", c, check=False).stdout[-1500:] for n, c in names.items()}
            pytest.fail(f"the split deployment was not ready in 240 s: {logs}")
        MEASUREMENTS.append(
            f"five containers (gateway + 4 runners) start -> gateway /readyz 200: {time.perf_counter() - start:.1f} s"
        )
        yield {"url": url, "names": names}
    finally:
        podman("rm", "-f", "-t", "2", *names.values(), check=False)
        podman("network", "rm", net, check=False)


def _calls(url: str) -> dict[str, httpx.Response]:
    with httpx.Client(base_url=url, timeout=30) as c:
        return {
            "image": c.post("/classify_image", files={"image": ("a.png", PNG, "image/png")}),
            "text-small": c.post("/classify_text", json={"text": "A witty, warm film.", "tier": "small"}),
            "text-large": c.post("/classify_text", json={"text": "A witty, warm film.", "tier": "large"}),
            "demand": c.post("/predict_demand", json=EXAMPLE_DEMAND_ROW),
        }


def test_every_endpoint_answers_through_the_runner_containers(split):
    answers = _calls(split["url"])
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 200), {k: r.text for k, r in answers.items()}
    assert answers["image"].json()["label"] == "Ankle boot"
    assert answers["text-small"].json()["model"].startswith("review-textcnn:")
    assert answers["text-large"].json()["model"].startswith("review-minilm:")
    assert answers["demand"].json()["bikers"] >= 0
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a fine film"]}]}
    assert httpx.post(split["url"] + "/v2/models/review-textcnn/infer", json=body, timeout=30).status_code == 200


def test_a_stopped_runner_turns_only_its_routes_away_until_it_is_started_again(split):
    url, names = split["url"], split["names"]
    gateway_started = podman("inspect", names[GATEWAY], "--format", "{{.State.StartedAt}}").stdout
    podman("stop", "-t", "5", names["tiffin-text-large"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answers = _calls(url)
        if answers["text-large"].status_code == 503:
            break
        time.sleep(0.5)
    large = answers["text-large"]
    assert large.status_code == 503 and large.headers["retry-after"], large.text
    assert "review-minilm runner" in large.json()["error"]
    assert {k: r.status_code for k, r in answers.items() if k != "text-large"} == {"image": 200, "text-small": 200, "demand": 200}
    probe = time.perf_counter()
    assert httpx.get(url + "/readyz", timeout=2).status_code == 503
    assert time.perf_counter() - probe < 1

    podman("start", names["tiffin-text-large"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _calls(url)["text-large"].status_code != 200:
        time.sleep(1)
    assert {k: r.status_code for k, r in _calls(url).items()} == dict.fromkeys(
        ("image", "text-small", "text-large", "demand"), 200
    )
    assert _ready(url, 30) >= 0
    # the gateway was never restarted
    assert podman("inspect", names[GATEWAY], "--format", "{{.State.StartedAt}}").stdout == gateway_started
