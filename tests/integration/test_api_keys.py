"""API keys on every surface: {no key, bad key, wrong scope, good key} x {typed routes, OIP
REST, OIP gRPC, the hot path, /metrics}, quotas as 429 / RESOURCE_EXHAUSTED, probes and
static pages open, and no key or digest in any log line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import numpy as np
import pytest

from tiffin.deploy.serve import Server
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW

pytestmark = pytest.mark.integration
PNG = Path("services/examples/bag.png").read_bytes()
KEYS = {
    "infer": "tfn_test_infer_key_0123456789",
    "metrics": "tfn_test_metrics_key_0123456789",
    "quota": "tfn_test_quota_key_012345",
}
DIGESTS = {name: hashlib.sha256(key.encode()).hexdigest() for name, key in KEYS.items()}
ENTRIES = f"reader:{DIGESTS['infer']}:infer, scraper:{DIGESTS['metrics']}:metrics, small:{DIGESTS['quota']}:infer:0.2/2"
HTTP_SURFACES = {
    "classify_image": ("POST", "/classify_image", dict(files={"image": ("b.png", PNG, "image/png")})),
    "classify_text": ("POST", "/classify_text", dict(json={"text": "a fine film"})),
    "predict_demand": ("POST", "/predict_demand", dict(json=EXAMPLE_DEMAND_ROW)),
    "hot_path": ("POST", "/fast/classify", dict(content=bytes(784), headers={"content-type": "application/octet-stream"})),
    "oip_metadata": ("GET", "/v2/models/fashion-cnn", {}),
    "oip_infer": (
        "POST",
        "/v2/models/review-textcnn/infer",
        dict(json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}),
    ),
}


@pytest.fixture(scope="module")
def guarded(server):  # after the main server fixture, so TIFFIN_*_MODEL pins are set
    with Server(env={"TIFFIN_API_KEYS": ENTRIES, "TIFFIN_API_WORKERS": "1"}) as srv:
        yield srv


def call(srv, surface: str, auth: dict[str, str]) -> httpx.Response:
    method, path, kwargs = HTTP_SURFACES[surface]
    kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), **auth}}
    return httpx.request(method, srv.url + path, timeout=30, **kwargs)


AUTH = {
    "none": ({}, 401),
    "bad": ({"Authorization": "Bearer tfn_not_a_key"}, 401),
    "wrong-scope": ({"Authorization": f"Bearer {KEYS['metrics']}"}, 403),
    "good-bearer": ({"Authorization": f"Bearer {KEYS['infer']}"}, 200),
    "good-x-api-key": ({"X-API-Key": KEYS["infer"]}, 200),
}


@pytest.mark.parametrize("surface", HTTP_SURFACES)
@pytest.mark.parametrize("who", AUTH)
def test_every_http_surface_checks_the_key(guarded, surface, who):
    auth, status = AUTH[who]
    r = call(guarded, surface, auth)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.headers["www-authenticate"].startswith('Bearer realm="tiffin"') and "API key" in r.json()["error"]
        assert ('error="invalid_token"' in r.headers["www-authenticate"]) == (who == "bad")
    if status == 403:
        assert 'error="insufficient_scope", scope="infer"' in r.headers["www-authenticate"]


def test_metrics_need_the_metrics_scope(guarded):
    assert httpx.get(guarded.url + "/metrics").status_code == 401
    assert httpx.get(guarded.url + "/metrics", headers={"X-API-Key": KEYS["infer"]}).status_code == 403
    r = httpx.get(guarded.url + "/metrics", headers={"X-API-Key": KEYS["metrics"]})
    assert r.status_code == 200 and "tiffin_model_requests_total" in r.text


def test_probes_and_pages_stay_open(guarded):
    for path in ("/livez", "/readyz", "/v2/health/ready", "/", "/docs.json", "/playground/"):
        assert httpx.get(guarded.url + path, timeout=10).status_code == 200, path


@pytest.mark.parametrize("who", AUTH)
def test_grpc_checks_the_key_from_call_metadata(guarded, who):
    """With tritonclient, as users call it: its `headers` travel as call metadata."""
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    auth, status = AUTH[who]
    client = triton_grpc.InferenceServerClient(guarded.grpc_target)
    image = triton_grpc.InferInput("image", [1, 28, 28], "UINT8")
    image.set_data_from_numpy(np.zeros((1, 28, 28), dtype=np.uint8))
    headers = {k.lower(): v for k, v in auth.items()}
    try:
        if status == 200:
            assert (
                client.infer("fashion-cnn", [image], headers=headers, client_timeout=30).get_response().model_name
                == "fashion-cnn"
            )
            return
        with pytest.raises(InferenceServerException) as caught:
            client.infer("fashion-cnn", [image], headers=headers, client_timeout=30)
        expected = "UNAUTHENTICATED" if status == 401 else "PERMISSION_DENIED"
        assert expected in str(caught.value.status()), caught.value
    finally:
        client.close()


def test_a_quota_answers_429_then_recovers(guarded):
    auth = {"Authorization": f"Bearer {KEYS['quota']}"}
    statuses = [call(guarded, "classify_text", auth) for _ in range(4)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]  # the burst of 2
    refused = statuses[2]
    assert refused.status_code == 429 and "quota" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["ratelimit-limit"] == "2"
    assert refused.headers["ratelimit-remaining"] == "0"


def test_no_key_or_digest_in_any_log_line(guarded):
    logs = guarded.logs()
    assert "Service tiffin initialized" in logs  # these are the serving logs
    for secret in [*KEYS.values(), *DIGESTS.values()]:
        assert secret not in logs


def test_an_open_server_says_so_once_per_worker(server):
    logs = server.logs()
    assert logs.count("no API keys are set") == logs.count("Service tiffin initialized") >= 1
