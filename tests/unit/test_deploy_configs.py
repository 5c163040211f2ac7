"""Deployment configs, checked offline: the BentoCloud one against BentoML's own
deployment schema classes, the Kubernetes manifests against Kubernetes' OpenAPI schemas."""

from __future__ import annotations

import json
import typing

import attr
import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT
from tiffin.deploy import k8s

K8S_VERSION = "1.33"


def _unknown_keys(data, hint, where: str = "") -> list[str]:
    """BentoML's schemas tolerate extra keys, so a typo would be silently ignored: walk
    the config beside the schema's type hints and list every key the schema lacks."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return [p for a in args if a is not type(None) for p in _unknown_keys(data, a, where)]
    if origin is list and isinstance(data, list):
        return [p for v in data for p in _unknown_keys(v, args[0], where)]
    if origin is dict and isinstance(data, dict):
        return [p for k, v in data.items() for p in _unknown_keys(v, args[1], f"{where}{k}.")]
    if attr.has(hint) and isinstance(data, dict):
        hints, fields = typing.get_type_hints(hint), {f.name for f in attr.fields(hint)}
        problems = [f"{where}{k}" for k in data if k not in fields]
        return problems + [p for k, v in data.items() if k in fields for p in _unknown_keys(v, hints[k], f"{where}{k}.")]
    return []


def test_bentocloud_config_matches_bentoml_schema(model_store):  # importing the service resolves its models
    from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema
    from bentoml._internal.cloud.schemas.utils import cloud_converter

    config = yaml.safe_load((ROOT / "bentos/deploy/bentocloud.yaml").read_text())
    schema = cloud_converter.structure({**config, "bento": "tiffin-gateway:latest"}, CreateDeploymentSchema)
    assert _unknown_keys(config, CreateDeploymentSchema) == []

    from services.gateway import Gateway

    served = {svc.name for svc in Gateway.all_services().values()}
    assert set(schema.services) == served
    for name, svc in schema.services.items():
        assert svc.scaling.min_replicas == 0, f"{name} should scale to zero"
        assert svc.scaling.max_replicas >= 1
    assert schema.services["tiffin-image"].instance_type.startswith("gpu")
    assert schema.services["tiffin-text-large"].instance_type.startswith("gpu")
    assert not schema.secrets  # no service reads one yet; a missing secret would fail the deployment


def test_a_typo_in_the_bentocloud_config_is_caught():
    from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema

    config = yaml.safe_load((ROOT / "bentos/deploy/bentocloud.yaml").read_text())
    config["services"]["tiffin-gateway"]["scaling"]["min_replica"] = 0
    assert _unknown_keys(config, CreateDeploymentSchema) == ["services.tiffin-gateway.scaling.min_replica"]


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("k8s")
    book = {
        "revision": 3,
        "aliases": {"fashion-cnn": {"production": {"version": "abc"}}},
        "history": [{"n": i} for i in range(80)],
    }
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in k8s.write("registry.example/tiffin:1", out, book)}


def test_deployment_service_and_hpa_are_valid_kubernetes(manifests):
    kinds = []
    for doc in manifests["deployment.yaml"]:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        kinds.append(doc["kind"])
    assert kinds == ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"]


def _valid_knative_pod(ksvc: dict) -> dict:
    """Knative's revision template is a pod template (plus Knative-only fields): check the pod
    part with Kubernetes' own schema, and return it."""
    spec = {k: v for k, v in ksvc["spec"]["template"]["spec"].items() if k not in ("containerConcurrency", "timeoutSeconds")}
    pod_template = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "tiffin"},
        "template": {"metadata": {"labels": {"app": "tiffin"}}, "spec": spec},
    }
    kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)
    return spec


def test_knative_service_scales_to_zero_and_its_pod_spec_is_valid(manifests):
    [aliases, ksvc] = manifests["knative-service.yaml"]
    assert aliases == manifests["deployment.yaml"][0]
    assert ksvc["apiVersion"] == "serving.knative.dev/v1" and ksvc["kind"] == "Service"
    notes = ksvc["spec"]["template"]["metadata"]["annotations"]
    assert notes["autoscaling.knative.dev/min-scale"] == "0"
    assert int(notes["autoscaling.knative.dev/target"]) > 0
    spec = _valid_knative_pod(ksvc)
    [container] = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["runAsNonRoot"] is True


def test_invalid_manifest_is_rejected(manifests):
    bad = yaml.safe_load(yaml.safe_dump(manifests["deployment.yaml"][1]))
    bad["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_the_image_runner_counts_the_pods_cpu_request(manifests):
    # in a pod the runner sees the node's cores; the manifests give it the request instead
    [_, deployment, *_] = manifests["deployment.yaml"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["resources"]["requests"]["cpu"] == "2" and env["TIFFIN_CPU_CORES"] == "2"
    assert [k8s._cores(c) for c in ("500m", "1", "2", "2500m", "16")] == [1, 1, 2, 2, 16]


@pytest.mark.parametrize("file", ["deployment.yaml", "knative-service.yaml"])
def test_every_replica_reads_the_alias_book_from_the_config_map(manifests, file):
    [aliases, workload, *_] = manifests[file]
    kubernetes_validate.validate(aliases, K8S_VERSION, strict=True)
    pod = workload["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    [mount] = container["volumeMounts"]
    [volume] = pod["volumes"]
    assert volume == {"name": mount["name"], "configMap": {"name": aliases["metadata"]["name"], "optional": True}}
    [(name, text)] = aliases["data"].items()
    assert env["TIFFIN_ALIASES_FILE"] == f"{mount['mountPath']}/{name}" and mount["readOnly"] is True
    book = json.loads(text)
    assert book["aliases"]["fashion-cnn"]["production"]["version"] == "abc" and book["revision"] == 3
    assert book["history"] == [{"n": i} for i in range(30, 80)]  # the last moves: a ConfigMap holds 1 MiB


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("k8s-split")
    paths = k8s.write("registry.example/tiffin:1", out, {}, split_image="registry.example/{service}-cpu:1")
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in paths}


def _env(workload: dict) -> dict[str, str]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_each_service_has_its_own_deployment_and_the_gateway_finds_the_runners_by_service_name(split):
    docs = split["split-deployment.yaml"][1:]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == set(services) == set(k8s.SERVICES)
    for name, workload in deployments.items():
        assert _env(workload)["BENTOML_SERVE_SERVICE_NAME"] == name
        [container] = workload["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] == "start-http-server"
        assert container["image"] == f"registry.example/{name}-cpu:1"  # each service its own image
    # every runner the gateway names is a Service of the set, on the port its Service serves
    depends = dict(pair.split("=", 1) for pair in _env(deployments["tiffin-gateway"])["TIFFIN_RUNNER_URLS"].split())
    assert set(depends) == set(k8s.SERVICES) - {"tiffin-gateway"}
    for runner, url in depends.items():
        assert url == f"http://{runner}" and services[runner]["spec"]["ports"][0]["port"] == 80
    # runners serve no gRPC; the gateway does (the OIP)
    assert [p["name"] for p in services["tiffin-image"]["spec"]["ports"]] == ["http"]
    assert "grpc" in [p["name"] for p in services["tiffin-gateway"]["spec"]["ports"]]


def test_each_runner_scales_to_zero_on_its_own_and_the_gateway_leaves_them_be(split):
    ksvcs = {d["metadata"]["name"]: d for d in split["split-knative.yaml"][1:]}
    assert set(ksvcs) == set(k8s.SERVICES)
    for name, ksvc in ksvcs.items():
        _valid_knative_pod(ksvc)
        notes = ksvc["spec"]["template"]["metadata"]["annotations"]
        assert notes["autoscaling.knative.dev/min-scale"] == "0"
        assert int(notes["autoscaling.knative.dev/target"]) == k8s.SERVICES[name][2]
    # a gateway that probed its runners every second would keep them from ever scaling to zero
    assert _env(ksvcs["tiffin-gateway"])["TIFFIN_RUNNER_PROBE_S"] == "0"
    assert "TIFFIN_RUNNER_PROBE_S" not in _env(ksvcs["tiffin-image"])
