"""Kubernetes manifests for a tiffin container image, for those who host their own:
a Knative Service (scale to zero, concurrency target) and a plain Deployment + Service +
HorizontalPodAutoscaler. `python -m tiffin.deploy.k8s IMAGE [OUT_DIR]` writes them as YAML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from tiffin.wire.limits import GRPC_PORT, HTTP_PORT


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
        "env": [{"name": "TIFFIN_GRPC_PORT", "value": str(GRPC_PORT)}, {"name": "TIFFIN_CPU_CORES", "value": str(_cores(cpu))}],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        "readinessProbe": _probe("/readyz", 2),
        "livenessProbe": _probe("/livez", 10),
        # the bento image already runs as its own user (uid 1034, "bentoml")
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
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
                "spec": {"containerConcurrency": concurrency * 4, "timeoutSeconds": 60, "containers": [container]},
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
                    "spec": {"terminationGracePeriodSeconds": 30, "containers": [container]},
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


def write(image: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {out / "knative-service.yaml": [knative(image)], out / "deployment.yaml": deployment(image)}
    for path, docs in files.items():
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return list(files)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tiffin.deploy.k8s IMAGE [OUT_DIR]")
    for p in write(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else "build/k8s")):
        print(p)
