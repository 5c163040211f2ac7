"""Kubernetes manifests for a tiffin container image, for those who host their own:
a Knative Service (scale to zero, concurrency target) and a plain Deployment + Service +
HorizontalPodAutoscaler. `python -m tiffin.deploy.k8s IMAGE [OUT_DIR] [SPLIT_IMAGE]` writes them
as YAML; with SPLIT_IMAGE, also the same two kinds once per service of the gateway bento
(`split-*.yaml`), each runner scaled on its own and the gateway reaching them by their
Service names (TIFFIN_RUNNER_URLS: BentoML's `bentoml.depends(url=...)`). SPLIT_IMAGE names each service's
image (`make containerize-split`) with `{service}`, e.g. `registry.example/{service}-cpu:1`;
without it every service runs from that one image (the gateway's holds every service's code).

Both mount the alias book (tiffin/versions/book.py) from a ConfigMap, `tiffin-aliases`, at
TIFFIN_ALIASES_FILE: every replica's workers poll it each second, and the kubelet replaces a
mounted ConfigMap atomically (a symlink swap), so `kubectl apply` of an edited book moves
every replica within the kubelet's sync period (about a minute) plus a second. It starts
as this host's book (its aliases, splits and shadows; the last 50 moves), else empty."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tiffin.versions.book import Book
from tiffin.wire.limits import GRPC_PORT, HTTP_PORT

ALIASES = "tiffin-aliases"  # the ConfigMap, its volume, and the file's name in it
ALIASES_DIR = "/etc/tiffin/aliases"
ALIASES_FILE = f"{ALIASES_DIR}/{ALIASES}.json"


def _probe(path: str, delay: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": HTTP_PORT}, "initialDelaySeconds": delay, "periodSeconds": 5, "failureThreshold": 3}


def _cores(cpu: str) -> int:
    """The image runner lays its workers and threads out on the cores it sees, and in a pod
    it sees the node's: give it the cores the pod requests instead ("500m" -> 1, "2" -> 2)."""
    cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return max(1, int(cores))


# The gateway bento's services (services/gateway.py): cpu and memory requests, and the
# concurrency per replica where each route's throughput stops growing in `make bench` on 2
# cores (image 3,428 req/s at 64 clients, 3,511 at 256; TextCNN 7,063 / 8,251; MiniLM 253 at
# 64, its own raw limit 310 items/s, so 16 already fill it; demand 6,959 at 16, 6,049 at 256).
SERVICES: dict[str, tuple[str, str, int]] = {
    "tiffin-image": ("2", "2Gi", 64),
    "tiffin-text-small": ("1", "1Gi", 64),
    "tiffin-text-large": ("2", "2Gi", 16),
    "tiffin-demand": ("1", "1Gi", 16),
    "tiffin-gateway": ("1", "1Gi", 64),
}
GATEWAY = "tiffin-gateway"


def _container(
    image: str, cpu: str, memory: str, service: str | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`service`: the one service of the gateway bento this container runs (BentoML's
    `start-http-server`, the image's entrypoint, reads BENTOML_SERVE_SERVICE_NAME)."""
    extra = {"BENTOML_SERVE_SERVICE_NAME": service} if service else {}
    container = {
        "name": "tiffin",
        "image": image,
        "ports": [{"name": "http1", "containerPort": HTTP_PORT}],
        "env": [
            {"name": "TIFFIN_GRPC_PORT", "value": str(GRPC_PORT)},
            {"name": "TIFFIN_CPU_CORES", "value": str(_cores(cpu))},
            {"name": "TIFFIN_ALIASES_FILE", "value": ALIASES_FILE},
            *({"name": k, "value": v} for k, v in {**extra, **(env or {})}.items()),
        ],
        "volumeMounts": [{"name": ALIASES, "mountPath": ALIASES_DIR, "readOnly": True}],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        "readinessProbe": _probe("/readyz", 2),
        "livenessProbe": _probe("/livez", 10),
        # the bento image already runs as its own user (uid 1034, "bentoml")
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    if service:
        container["args"] = ["start-http-server", "--port", str(HTTP_PORT)]
    return container


def _aliases_volume() -> dict[str, Any]:
    return {"name": ALIASES, "configMap": {"name": ALIASES, "optional": True}}


def aliases_config_map(book: dict[str, Any] | None = None, history: int = 50) -> dict[str, Any]:
    """The alias book as a ConfigMap (1 MiB at most: the history is cut to its last moves)."""
    book = dict(book or {"revision": 0, "aliases": {}, "history": []})
    book["history"] = book.get("history", [])[-history:]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ALIASES, "labels": {"app.kubernetes.io/part-of": "tiffin"}},
        "data": {f"{ALIASES}.json": json.dumps(book, indent=1, sort_keys=True)},
    }


def knative(
    image: str,
    name: str = "tiffin",
    *,
    min_scale: int = 0,
    max_scale: int = 4,
    concurrency: int = 64,
    cpu: str = "2",
    memory: str = "4Gi",
    service: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    container = _container(image, cpu, memory, service, env)
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {
                        "autoscaling.knative.dev/min-scale": str(min_scale),
                        "autoscaling.knative.dev/max-scale": str(max_scale),
                        "autoscaling.knative.dev/metric": "concurrency",
                        "autoscaling.knative.dev/target": str(concurrency),
                        "autoscaling.knative.dev/scale-to-zero-pod-retention-period": "5m",
                    }
                },
                "spec": {
                    "containerConcurrency": concurrency * 4,
                    "timeoutSeconds": 60,
                    "containers": [container],
                    "volumes": [_aliases_volume()],
                },
            }
        },
    }


def deployment(
    image: str,
    name: str = "tiffin",
    *,
    replicas: int = 1,
    max_replicas: int = 4,
    cpu: str = "2",
    memory: str = "4Gi",
    cpu_target: int = 70,
    service: str | None = None,
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    def labels() -> dict[str, str]:  # a fresh dict each time: YAML would otherwise write anchors
        return {"app.kubernetes.io/name": name}

    container = _container(image, cpu, memory, service, env)
    serves_grpc = service in (None, GATEWAY)  # the public API services; runners have HTTP only
    if serves_grpc:
        container["ports"] += [{"name": "grpc", "containerPort": GRPC_PORT}]
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels()},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels()},
                "template": {
                    "metadata": {"labels": labels()},
                    "spec": {"terminationGracePeriodSeconds": 30, "containers": [container], "volumes": [_aliases_volume()]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels()},
            "spec": {
                "selector": labels(),
                "ports": [
                    {"name": "http", "port": 80, "targetPort": HTTP_PORT},
                    *([{"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT}] if serves_grpc else []),
                ],
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "labels": labels()},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": replicas,
                "maxReplicas": max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_target}},
                    }
                ],
            },
        },
    ]


def _depends() -> str:
    """The runners by their Service names (same namespace; Knative and plain Services both
    answer on port 80), as TIFFIN_RUNNER_URLS takes them."""
    return " ".join(f"{name}=http://{name}" for name in SERVICES if name != GATEWAY)


def _image(pattern: str, service: str) -> str:
    return pattern.replace("{service}", service)


def split_knative(image: str) -> list[dict[str, Any]]:
    """One Knative Service per service, each scaling to zero on its own. The gateway does not
    watch its runners (TIFFIN_RUNNER_PROBE_S=0): probes would keep them from ever scaling to
    zero, and a call to a runner at zero waits in Knative's activator while it starts."""
    docs = []
    for name, (cpu, memory, concurrency) in SERVICES.items():
        env = {"TIFFIN_RUNNER_URLS": _depends(), "TIFFIN_RUNNER_PROBE_S": "0"} if name == GATEWAY else {}
        docs.append(knative(_image(image, name), name, concurrency=concurrency, cpu=cpu, memory=memory, service=name, env=env))
    return docs


def split_deployments(image: str) -> list[dict[str, Any]]:
    """Deployment + Service + HPA per service; the gateway watches its runners (a runner
    without a ready pod makes its routes 503 at once, tiffin/runtime/remote.py)."""
    docs = []
    for name, (cpu, memory, _) in SERVICES.items():
        env = {"TIFFIN_RUNNER_URLS": _depends()} if name == GATEWAY else {}
        docs += deployment(_image(image, name), name, cpu=cpu, memory=memory, service=name, env=env)
    return docs


def write(image: str, out: Path, book: dict[str, Any] | None = None, split_image: str | None = None) -> list[Path]:
    """`book`: the alias book to start from (default: this host's, tiffin/versions/book.py);
    `split_image`: the per-service images, `{service}` standing for each service's name."""
    out.mkdir(parents=True, exist_ok=True)
    aliases = aliases_config_map(Book().read() if book is None else book)
    files = {out / "knative-service.yaml": [aliases, knative(image)], out / "deployment.yaml": [aliases, *deployment(image)]}
    if split_image:
        files[out / "split-knative.yaml"] = [aliases, *split_knative(split_image)]
        files[out / "split-deployment.yaml"] = [aliases, *split_deployments(split_image)]
    for path, docs in files.items():
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return list(files)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tiffin.deploy.k8s IMAGE [OUT_DIR] [SPLIT_IMAGE]")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "build/k8s")
    for p in write(sys.argv[1], out, split_image=sys.argv[3] if len(sys.argv) > 3 else None):
        print(p)
