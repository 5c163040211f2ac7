"""Kubernetes manifests for a tiffin container image, for those who host their own:
a Knative Service (scale to zero, concurrency target) and a plain Deployment + Service +
HorizontalPodAutoscaler. `python -m tiffin.deploy.k8s IMAGE [OUT_DIR]` writes them as YAML.

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


def _container(image: str, cpu: str, memory: str) -> dict[str, Any]:
    return {
        "name": "tiffin",
        "image": image,
        "ports": [{"name": "http1", "containerPort": HTTP_PORT}],
        "env": [
            {"name": "TIFFIN_GRPC_PORT", "value": str(GRPC_PORT)},
            {"name": "TIFFIN_CPU_CORES", "value": str(_cores(cpu))},
            {"name": "TIFFIN_ALIASES_FILE", "value": ALIASES_FILE},
        ],
        "volumeMounts": [{"name": ALIASES, "mountPath": ALIASES_DIR, "readOnly": True}],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        "readinessProbe": _probe("/readyz", 2),
        "livenessProbe": _probe("/livez", 10),
        # the bento image already runs as its own user (uid 1034, "bentoml")
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }


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
) -> dict[str, Any]:
    container = _container(image, cpu, memory)
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
) -> list[dict[str, Any]]:
    def labels() -> dict[str, str]:  # a fresh dict each time: YAML would otherwise write anchors
        return {"app.kubernetes.io/name": name}

    container = _container(image, cpu, memory)
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
                    {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
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


def write(image: str, out: Path, book: dict[str, Any] | None = None) -> list[Path]:
    """`book`: the alias book to start from (default: this host's, tiffin/versions/book.py)."""
    out.mkdir(parents=True, exist_ok=True)
    aliases = aliases_config_map(Book().read() if book is None else book)
    files = {out / "knative-service.yaml": [aliases, knative(image)], out / "deployment.yaml": [aliases, *deployment(image)]}
    for path, docs in files.items():
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return list(files)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tiffin.deploy.k8s IMAGE [OUT_DIR]")
    for p in write(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else "build/k8s")):
        print(p)
