"""The Open Inference Protocol, checked with unmodified third-party clients:
tritonclient.http (REST, binary tensor extension on by default) and tritonclient.grpc."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import torch
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_grpc_aio
import tritonclient.http as triton_http
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from tiffin import families
from tiffin.deploy.serve import Server
from tiffin.families import bikeshare, fashion, minilm, textcnn
from tiffin.families.bikeshare import FEATURES
from train import datasets

SERVED = [f.name for f in families.TRAINED if f.signature]  # every model the API serves over the OIP

pytestmark = pytest.mark.integration
PROTOCOLS = ["http", "grpc"]


@pytest.fixture(scope="module", params=PROTOCOLS)
def triton(request, server):
    if request.param == "http":
        client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    else:
        client = triton_grpc.InferenceServerClient(server.grpc_target)
    client.protocol = request.param
    client.mod = triton_http if request.param == "http" else triton_grpc
    yield client
    client.close()


def _input(triton, name: str, array: np.ndarray, datatype: str):
    tensor = triton.mod.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _version(spec: families.Family) -> str:
    return spec.tag.split(":")[1]


def test_health_and_server_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    meta = triton.get_server_metadata()
    name = meta["name"] if isinstance(meta, dict) else meta.name
    assert name == "tiffin"


@pytest.mark.parametrize("name", SERVED)
def test_every_model_is_ready_with_its_real_signature(triton, name):
    spec = families.BY_NAME[name]
    assert triton.is_model_ready(name)
    assert triton.is_model_ready(name, model_version=_version(spec))
    meta = triton.get_model_metadata(name) if triton.protocol == "http" else triton.get_model_metadata(name, as_json=True)
    assert meta["versions"] == [_version(spec)]
    inputs = {t["name"]: t["datatype"] for t in meta["inputs"]}
    outputs = {t["name"]: t["datatype"] for t in meta["outputs"]}
    expected = {
        "fashion-cnn": ({"image": "UINT8"}, {"probabilities": "FP32", "label": "BYTES"}),
        "review-textcnn": ({"text": "BYTES"}, {"probabilities": "FP32", "label": "BYTES"}),
        "review-minilm": ({"text": "BYTES"}, {"probabilities": "FP32", "label": "BYTES"}),
        "bikeshare-mlp": (None, {"bikers": "FP32"}),
    }[name]
    if expected[0] is not None:
        assert inputs == expected[0]
    else:
        assert set(inputs) == set(FEATURES) and inputs["mnth"] == "BYTES" and inputs["hr"] == "INT64"
    assert outputs == expected[1]


@pytest.mark.parametrize("name", SERVED)
def test_model_configuration_in_tritons_form(triton, name):
    """What perf_analyzer asks for first (REST GET .../config, gRPC ModelConfig): Triton's field
    names, the batch dimension as max_batch_size, the same tensors as the metadata."""
    config = triton.get_model_config(name) if triton.protocol == "http" else triton.get_model_config(name, as_json=True)
    config = config.get("config", config)  # gRPC's JSON wraps it in the response message
    meta = triton.get_model_metadata(name) if triton.protocol == "http" else triton.get_model_metadata(name, as_json=True)
    assert config["name"] == name and int(config["max_batch_size"]) == 256
    for kind, key in (("input", "inputs"), ("output", "outputs")):
        for tensor, described in zip(config[kind], meta[key], strict=True):
            assert tensor["name"] == described["name"]
            assert tensor["data_type"] == ("TYPE_STRING" if described["datatype"] == "BYTES" else "TYPE_" + described["datatype"])
            rest = [int(d) for d in described["shape"][1:]]
            assert [int(d) for d in tensor["dims"]] == (rest or [1])
    with pytest.raises(InferenceServerException, match="unknown model"):
        triton.get_model_config("no-such-model")


def test_image_as_uint8_pixels_matches_the_model(triton):
    x = datasets.fashion_mnist().x_test[:8]
    result = triton.infer("fashion-cnn", [_input(triton, "image", x, "UINT8")])
    _, local = families.load(fashion.FAMILY, torch.device("cpu"))
    np.testing.assert_allclose(result.as_numpy("probabilities"), local(x), atol=1e-5)
    assert [b.decode() for b in result.as_numpy("label")] == [fashion.CLASSES[i] for i in local(x).argmax(1)]
    response = result.get_response()
    version = response["model_version"] if triton.protocol == "http" else response.model_version
    assert version == _version(fashion.FAMILY)


def test_image_as_fp16_intensities(triton):
    x = datasets.fashion_mnist().x_test[:4]
    as_fp16 = (x / 255).astype(np.float16)
    result = triton.infer("fashion-cnn", [_input(triton, "image", as_fp16, "FP16")])
    _, local = families.load(fashion.FAMILY, torch.device("cpu"))
    # fp16 holds every k/255 closely enough to round back to the same pixel
    np.testing.assert_allclose(result.as_numpy("probabilities"), local(x), atol=1e-5)


def test_image_as_encoded_bytes(triton):
    png = Path("services/examples/ankle-boot.png").read_bytes()
    result = triton.infer(
        "fashion-cnn",
        [_input(triton, "image", np.array([png], dtype=object), "BYTES")],
        outputs=[triton.mod.InferRequestedOutput("label")],
    )
    assert result.as_numpy("label").tolist() == [b"Ankle boot"]
    assert result.as_numpy("probabilities") is None  # only the requested output comes back


@pytest.mark.parametrize("spec", [textcnn.FAMILY, minilm.FAMILY], ids=["small", "large"])
def test_text_as_bytes(triton, spec):
    texts = datasets.rotten_tomatoes().x_test[:6]
    batch = np.array([t.encode() for t in texts], dtype=object)
    result = triton.infer(spec.name, [_input(triton, "text", batch, "BYTES")], model_version=_version(spec))
    _, local = families.load(spec, torch.device("cpu"))
    np.testing.assert_allclose(result.as_numpy("probabilities"), local(texts), atol=1e-4)


def test_demand_from_one_tensor_per_column(triton):
    rows = datasets.bikeshare().x_test.head(5)
    inputs = []
    for t in bikeshare.FAMILY.signature.inputs:
        values = rows[t.name].to_numpy()
        if t.datatype == "BYTES":
            array = np.array([str(v).encode() for v in values], dtype=object)
        else:
            array = values.astype(np.int64 if t.datatype == "INT64" else np.float32)
        inputs.append(_input(triton, t.name, array, t.datatype))
    result = triton.infer("bikeshare-mlp", inputs)
    _, local = families.load(bikeshare.FAMILY, torch.device("cpu"))
    np.testing.assert_allclose(result.as_numpy("bikers"), local(rows[FEATURES].to_dict("records")), rtol=1e-4, atol=1e-3)


def _expect_error(call, protocol: str, http_status: int, grpc_code: str, fragment: str) -> None:
    with pytest.raises(InferenceServerException) as err:
        call()
    status = str(err.value.status())
    assert (str(http_status) in status) if protocol == "http" else (grpc_code in status), status
    assert fragment in err.value.message()


def test_errors_map_to_protocol_codes(triton):
    p = triton.protocol
    text = _input(triton, "text", np.array([b"fine"], dtype=object), "BYTES")
    _expect_error(lambda: triton.infer("nope", [text]), p, 404, "NOT_FOUND", "unknown model 'nope'")
    _expect_error(lambda: triton.infer("review-textcnn", [text], model_version="0000"), p, 404, "NOT_FOUND", "no version '0000'")
    _expect_error(lambda: triton.get_model_metadata("nope"), p, 404, "NOT_FOUND", "unknown model")
    wrong = _input(triton, "image", np.zeros((1, 32, 32), np.uint8), "UINT8")
    _expect_error(lambda: triton.infer("fashion-cnn", [wrong]), p, 400, "INVALID_ARGUMENT", "[N, 28, 28]")
    too_bright = _input(triton, "image", np.full((1, 28, 28), 2.0, np.float16), "FP16")
    _expect_error(lambda: triton.infer("fashion-cnn", [too_bright]), p, 400, "INVALID_ARGUMENT", "in 0..1")
    not_png = _input(triton, "image", np.array([b"not an image"], dtype=object), "BYTES")
    _expect_error(lambda: triton.infer("fashion-cnn", [not_png]), p, 400, "INVALID_ARGUMENT", "not a PNG or JPEG")
    blank = _input(triton, "text", np.array([b"  "], dtype=object), "BYTES")
    _expect_error(lambda: triton.infer("review-textcnn", [blank]), p, 400, "INVALID_ARGUMENT", "blank")
    misnamed = _input(triton, "sentence", np.array([b"fine"], dtype=object), "BYTES")
    _expect_error(lambda: triton.infer("review-textcnn", [misnamed]), p, 400, "INVALID_ARGUMENT", "takes inputs ['text']")
    floats = _input(triton, "text", np.zeros(2, np.float32), "FP32")
    _expect_error(lambda: triton.infer("review-textcnn", [floats]), p, 400, "INVALID_ARGUMENT", "BYTES tensor")


def test_rest_json_without_binary_and_error_bodies(server):
    doc = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["lovely"]}], "id": "r1"}
    r = httpx.post(f"{server.url}/v2/models/review-textcnn/infer", json=doc)
    assert r.status_code == 200 and r.json()["id"] == "r1"
    assert {o["name"] for o in r.json()["outputs"]} == {"probabilities", "label"}
    bad = httpx.post(
        f"{server.url}/v2/models/review-textcnn/infer", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    short = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": ["a"]}]}
    r = httpx.post(f"{server.url}/v2/models/review-textcnn/infer", json=short)
    assert r.status_code == 400 and "needs 3 values, got 1" in r.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/nope").status_code == 404


def test_grpc_health_and_reflection(server):
    async def check():
        async with grpc.aio.insecure_channel(server.grpc_target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = await health.Check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"))
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            async for response in responses:
                names = {s.name for s in response.list_services_response.service}
                assert "inference.GRPCInferenceService" in names and "grpc.health.v1.Health" in names
                break
            # v1, as grpcurl asks first: the same messages under the v1 service name
            v1 = channel.stream_stream(
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            async for response in v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
                names = {s.name for s in response.list_services_response.service}
                assert {"inference.GRPCInferenceService", "grpc.reflection.v1.ServerReflection"} <= names
                break

    asyncio.run(check())


def test_grpc_and_http_requests_share_batches(one_worker):
    """A typed HTTP request sent while gRPC requests are in flight lands in one batch with them
    (in one worker: each worker process has its own batchers, and the kernel, not we, picks
    the worker a connection lands in)."""
    texts = np.array([b"a film"], dtype=object)

    async def run(one: Server) -> int:
        client = triton_grpc_aio.InferenceServerClient(one.grpc_target)
        async with httpx.AsyncClient(base_url=one.url, timeout=60) as http:
            best = 1
            # the one typed request is sent a little after the gRPC burst starts, so it
            # lands while gRPC requests are queued at the runner
            for delay in [0.0, 0.002, 0.005, 0.01, 0.02, 0.04] * 2:
                inp = triton_grpc.InferInput("text", [1], "BYTES")
                inp.set_data_from_numpy(texts)
                grpc_calls = [asyncio.create_task(client.infer("review-textcnn", [inp])) for _ in range(40)]
                await asyncio.sleep(delay)
                r = await http.post("/classify_text", json={"text": "a film", "tier": "small"})
                await asyncio.gather(*grpc_calls)
                best = max(best, r.json()["batch_size"])
                if best > 1:
                    break
        await client.close()
        return best

    assert asyncio.run(run(one_worker)) > 1


def test_sustained_concurrency_has_no_errors(server):
    """400 gRPC requests, 32 at a time: BentoML refreshes its runner session every 100
    requests, which used to kill requests in flight (see tiffin/runtime/remote.py)."""

    async def run() -> list[bool]:
        client = triton_grpc_aio.InferenceServerClient(server.grpc_target)
        sem = asyncio.Semaphore(32)
        x = datasets.fashion_mnist().x_test[:1]

        async def one() -> bool:
            async with sem:
                inp = triton_grpc.InferInput("image", [1, 28, 28], "UINT8")
                inp.set_data_from_numpy(x)
                try:
                    await client.infer("fashion-cnn", [inp])
                    return True
                except InferenceServerException:
                    return False

        results = await asyncio.gather(*(one() for _ in range(400)))
        await client.close()
        return results

    retries_before = server.logs().count("retrying once")
    results = asyncio.run(run())
    assert all(results), f"{results.count(False)} of {len(results)} failed"
    # none even needed the one retry that tiffin.runtime.remote.ask allows
    assert server.logs().count("retrying once") == retries_before


def test_request_larger_than_a_runner_batch_is_split_and_answered(triton):
    # review-minilm's runner takes at most 32 items a call; 100 arrive in one request
    texts = datasets.rotten_tomatoes().x_test[:100]
    batch = np.array([t.encode() for t in texts], dtype=object)
    result = triton.infer("review-minilm", [_input(triton, "text", batch, "BYTES")])
    _, local = families.load(minilm.FAMILY, torch.device("cpu"))
    np.testing.assert_allclose(result.as_numpy("probabilities"), local(texts), atol=1e-4)


def test_work_past_the_runner_bound_is_503_with_retry_after(server):
    """256 long texts for MiniLM may be more than its batcher can start within its deadline on
    this CPU: then the answer is 503 + Retry-After (gRPC UNAVAILABLE), never 500."""
    texts = ["a long and winding review that goes on and on " * 10] * 256
    doc = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [256], "data": texts}]}
    r = httpx.post(f"{server.url}/v2/models/review-minilm/infer", json=doc, timeout=120)
    assert r.status_code in (200, 503), r.text
    if r.status_code == 503:
        assert int(r.headers["retry-after"]) >= 1 and "try again" in r.json()["error"]
    client = triton_grpc.InferenceServerClient(server.grpc_target)
    inp = triton_grpc.InferInput("text", [256], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object))
    try:
        client.infer("review-minilm", [inp], client_timeout=120)
    except InferenceServerException as exc:
        assert "UNAVAILABLE" in str(exc.status()) and "try again" in exc.message()
    # and the service is fine afterwards
    assert httpx.post(f"{server.url}/classify_text", json={"text": "fine"}, timeout=60).status_code == 200
