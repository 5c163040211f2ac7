"""`make bench`: one run that measures, side by side,

1. the raw Fashion-MNIST CNN at several batch sizes (the limit of this machine),
2. a bare Starlette echo app through the same load generator (the HTTP ceiling, and a
   check that the load generator is not the bottleneck),
3. tiffin served by `bentoml serve`, one 28x28 image per request, over the typed HTTP
   endpoint (PNG upload), the OIP REST endpoint (binary UINT8 tensor) and OIP gRPC (raw
   UINT8 tensor), at each concurrency;
4. the image runner served alone, through its hot path (raw bytes, in-process batcher);

and prints req/s, p50/p99, errors, mean requests per batch, server CPU, and the ratios.
Writes build/bench/results.json and build/bench/throughput.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
STORE = ROOT / "build" / "bench-store"


def raw_model(batch_sizes: list[int], seconds: float) -> list[dict]:
    import torch

    from tiffin import datasets, predictors, store

    _, predictor = predictors.load(store.IMAGE, torch.device("cpu"))
    pixels = datasets.fashion_mnist().x_test
    rows = []
    for bs in batch_sizes:
        batch = pixels[:bs]
        predictor(batch)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            predictor(batch)
            n += 1
        elapsed = time.perf_counter() - start
        rows.append({"batch_size": bs, "items_per_s": round(n * bs / elapsed, 1), "ms_per_batch": round(elapsed / n * 1000, 3)})
    return rows


def _tree_cpu(pid: int) -> float:
    import psutil

    total = 0.0
    try:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
    except psutil.Error:
        pass
    return total


def _batch_counters(url: str, runner: str) -> tuple[float, float]:
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    values = {}
    for kind in ("sum", "count"):
        m = re.search(rf'bentoml_service_adaptive_batch_size_{kind}{{[^}}]*runner_name="{runner}"[^}}]*}} ([0-9.e+]+)', text)
        values[kind] = float(m.group(1)) if m else 0.0
    return values["sum"], values["count"]


async def _run_point(label, send, concurrency, seconds, pid, url=None):
    from bench.loadgen import closed_loop

    cpu0, wall0 = _tree_cpu(pid), time.perf_counter()
    b0 = _batch_counters(url, "tiffin-image") if url else None
    result = await closed_loop(label, send, concurrency, seconds)
    row = result.row()
    row["server_cpu_pct"] = round(100 * (_tree_cpu(pid) - cpu0) / (time.perf_counter() - wall0), 1)
    if url:
        b1 = _batch_counters(url, "tiffin-image")
        row["mean_batch"] = round((b1[0] - b0[0]) / max(b1[1] - b0[1], 1), 2)
    return row


async def bench_echo(concurrencies, seconds) -> list[dict]:
    import aiohttp
    import httpx

    from tests.serving import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.echo:app", "--port", str(port), "--log-level", "warning",
                             "--no-access-log"], cwd=ROOT)
    try:
        for _ in range(100):
            try:
                httpx.post(f"http://127.0.0.1:{port}/echo", content=b"x", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        payload = bytes(784)
        rows = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def send():
                async with session.post(f"http://127.0.0.1:{port}/echo", data=payload) as r:
                    await r.read()
                    return r.status == 200
            for c in concurrencies:
                rows.append(await _run_point("starlette-echo", send, c, seconds, proc.pid))
        return rows
    finally:
        proc.terminate()
        proc.wait(10)


async def bench_tiffin(server, concurrencies, seconds) -> list[dict]:
    import aiohttp
    import grpc

    from tiffin import datasets, image
    from tiffin.oip import inference_pb2 as pb
    from tiffin.oip import inference_pb2_grpc as pb_grpc

    pixels = datasets.fashion_mnist().x_test[0]
    png = image.encode_png(pixels)
    raw = pixels.tobytes()
    head = json.dumps({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 28, 28],
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "label", "parameters": {"binary_data": False}}]}).encode()
    rest_body = head + raw
    grpc_request = pb.ModelInferRequest(model_name="fashion-cnn", raw_input_contents=[raw],
                                        inputs=[pb.ModelInferRequest.InferInputTensor(name="image", datatype="UINT8", shape=[1, 28, 28])],
                                        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="label")])
    rows = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        channel = grpc.aio.insecure_channel(server.grpc_target)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def typed():
            form = aiohttp.FormData()
            form.add_field("image", png, filename="i.png", content_type="image/png")
            async with session.post(server.url + "/classify_image", data=form) as r:
                await r.read()
                return r.status == 200

        async def oip_rest():
            async with session.post(server.url + "/v2/models/fashion-cnn/infer", data=rest_body,
                                    headers={"Inference-Header-Content-Length": str(len(head)),
                                             "Content-Type": "application/octet-stream"}) as r:
                await r.read()
                return r.status == 200

        async def oip_grpc():
            await stub.ModelInfer(grpc_request, timeout=60)
            return True

        for c in concurrencies:
            for label, send in (("typed-http", typed), ("oip-rest", oip_rest), ("oip-grpc", oip_grpc)):
                rows.append(await _run_point(label, send, c, seconds, server.proc.pid, server.url))
        await channel.close()
    return rows


async def bench_hotpath(server, concurrencies, seconds) -> list[dict]:
    import aiohttp

    from tiffin import datasets

    raw = datasets.fashion_mnist().x_test[0].tobytes()
    rows = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def hot():
            async with session.post(server.url + "/fast/classify", data=raw,
                                    headers={"Content-Type": "application/octet-stream"}) as r:
                await r.read()
                return r.status == 200

        for c in concurrencies:
            rows.append(await _run_point("hot-path", hot, c, seconds, server.proc.pid))
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label in dict.fromkeys(r["label"] for r in rows):
        pts = [r for r in rows if r["label"] == label]
        a.plot([p["concurrency"] for p in pts], [p["rps"] for p in pts], marker="o", label=label)
        b.plot([p["concurrency"] for p in pts], [p["p99_ms"] for p in pts], marker="o", label=label)
    for ax, title in ((a, "requests/s"), (b, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    a.set_yscale("log")
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per point")
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    os.environ["BENTOML_HOME"] = str(STORE)
    os.environ.setdefault("TIFFIN_DEVICE", "cpu")
    # Throughput does not depend on how well a model is trained: quick models in a store of the bench's own.
    subprocess.run([sys.executable, "-m", "train.all", "--quick", "--missing"], cwd=ROOT, check=True)

    from rich.console import Console
    from rich.table import Table

    from tests.serving import Server

    console = Console(width=150)
    console.print("[bold]raw model[/bold] (fashion-cnn, in-process)")
    raw = raw_model([1, 8, 32, 64, 128], min(args.seconds, 2.0))
    limit = max(r["items_per_s"] for r in raw)
    echo = asyncio.run(bench_echo(concurrencies, args.seconds))
    with Server(ready_timeout=240) as server:
        served = asyncio.run(bench_tiffin(server, concurrencies, args.seconds))
    # The image bento on its own, with its lean route (services/image_runner.py).
    with Server("services.image_runner:ImageRunner", ready_timeout=240) as server:
        served += asyncio.run(bench_hotpath(server, concurrencies, args.seconds))

    table = Table(title="raw model: the limit")
    for col in ("batch", "items/s", "ms/batch"):
        table.add_column(col, justify="right")
    for r in raw:
        table.add_row(str(r["batch_size"]), f"{r['items_per_s']:.0f}", f"{r['ms_per_batch']:.2f}")
    console.print(table)
    table = Table(title=f"served, one image per request (limit {limit:.0f} img/s)")
    for col in ("path", "conc", "req/s", "p50 ms", "p99 ms", "errors", "req/batch", "server CPU %", "vs limit", "vs echo"):
        table.add_column(col, justify="right")
    echo_by_c = {r["concurrency"]: r["rps"] for r in echo}
    for r in echo + served:
        r["ratio_to_limit"] = round(r["rps"] / limit, 3)
        r["ratio_to_echo"] = round(r["rps"] / echo_by_c[r["concurrency"]], 3)
        table.add_row(r["label"], str(r["concurrency"]), f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                      str(r["errors"]), str(r.get("mean_batch", "")), f"{r['server_cpu_pct']:.0f}",
                      f"{r['ratio_to_limit']:.3f}", f"{r['ratio_to_echo']:.3f}")
    console.print(table)
    by = {(r["label"], r["concurrency"]): r for r in served}
    for c in concurrencies:
        g, h = by[("oip-grpc", c)], by[("oip-rest", c)]
        console.print(f"concurrency {c}: gRPC/REST throughput {g['rps'] / h['rps']:.2f}x, "
                      f"p99 {g['p99_ms']:.1f} vs {h['p99_ms']:.1f} ms; gRPC/typed-HTTP {g['rps'] / by[('typed-http', c)]['rps']:.2f}x")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"cpu_count": os.cpu_count(), "raw_model": raw, "limit_items_per_s": limit,
                                                  "echo": echo, "served": served}, indent=1))
    plot(echo + served, OUT / "throughput.png")
    console.print(f"wrote {OUT / 'results.json'} and {OUT / 'throughput.png'}")


if __name__ == "__main__":
    main()
