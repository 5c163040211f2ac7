"""One measured point of `make bench`: a closed loop of requests at one concurrency, with the
CPU (and GPU) it cost and the mean batch it ran in; shared by bench/run.py and
bench/endpoints.py."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import threading
import time

from bench import h2load, wrk
from bench.loadgen import Send, closed_loop
from bench.wrk import HttpLoad


class Usage:
    """CPU of a process tree and of the machine, and GPU busy % (nvidia-smi), over a span.
    The tree's main threads are counted apart: in every server here they run the event loops
    (the model threads are others), and a loop's CPU per request is what limits a server
    whose model runs elsewhere, on a GPU."""

    def __init__(self, pid: int | None):
        import psutil

        self.pid, self.psutil = pid, psutil
        self.gpu: list[float] = []
        self.child_cpu = 0.0  # CPU seconds of a load generator run as a child process (wrk)
        self._stop = threading.Event()

    def _tree_cpu(self) -> tuple[float, float]:
        """(CPU seconds of the tree, of its processes' main threads)."""
        total = main = 0.0
        try:
            proc = self.psutil.Process(self.pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
                main += sum(th.user_time + th.system_time for th in p.threads() if th.id == p.pid)
        except self.psutil.Error:
            pass
        return total, main

    def _sample_gpu(self) -> None:
        while not self._stop.wait(0.2):
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"], capture_output=True, text=True
            )
            if out.returncode == 0 and out.stdout.strip():
                self.gpu.append(float(out.stdout.split()[0]))

    def _own_cpu(self) -> float:
        t = self.psutil.Process().cpu_times()
        return t.user + t.system

    def __enter__(self) -> Usage:
        (self.cpu0, self.main0), self.wall0 = self._tree_cpu() if self.pid else (0.0, 0.0), time.perf_counter()
        self.own0 = self._own_cpu()
        self.psutil.cpu_percent()
        self._thread = None
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._sample_gpu, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self.wall0
        self.machine_cpu = self.psutil.cpu_percent()
        cpu, main = self._tree_cpu() if self.pid else (float("nan"), float("nan"))
        self.server_cpu, self.loop_cpu = 100 * (cpu - self.cpu0) / wall, 100 * (main - self.main0) / wall
        self.loadgen_cpu = 100 * (self._own_cpu() - self.own0 + self.child_cpu) / wall
        self._stop.set()
        if self._thread:
            self._thread.join(2)

    def columns(self, rps: float) -> dict:
        # CPU rates over the whole span (wrk's warm-up second included) over the measured rate
        return {
            "server_cpu_pct": round(self.server_cpu, 1),
            "loadgen_cpu_pct": round(self.loadgen_cpu, 1),
            "loop_cpu_us_per_req": round(self.loop_cpu / 100 / rps * 1e6, 1) if rps > 0 and self.pid else None,
            "machine_cpu_pct": round(self.machine_cpu, 1),
            "gpu_util_pct": round(sum(self.gpu) / len(self.gpu), 1) if self.gpu else None,
        }


# one sample line of Prometheus' text format: name, {labels} (optional), value
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})? (\S+)$", re.M)


def samples(url: str) -> list[tuple[str, str, float]]:
    """Every sample on a server's /metrics, read once: (series, its labels as written, value)."""
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    return [(name, labels, float(value)) for name, labels, value in _SAMPLE.findall(text)]


def total(read: list[tuple[str, str, float]], series: str, *labels: str) -> float:
    """`series` summed over the label sets that hold every one of `labels` (e.g. 'model="x"')."""
    return sum(value for name, have, value in read if name == series and all(label in have for label in labels))


def batch_counters(url: str, series: str, label: str | None = None) -> tuple[float, float]:
    """(sum, count) of a batch-size histogram on a server's /metrics, over the series whose
    labels hold `label` (e.g. 'model="fashion-cnn"'; None: all)."""
    read, wanted = samples(url), (label,) if label else ()
    return total(read, series + "_sum", *wanted), total(read, series + "_count", *wanted)


def not_answered(url: str, model: str) -> float:
    """Requests a server's `model` took and did not answer (outcome busy, bad_request or error in
    tiffin_model_requests_total): the failed RPCs that h2load counts as answered. Not `gone`:
    the calls h2load leaves in flight when it stops are cancelled, not failed."""
    read, of = samples(url), f'model="{model}"'
    return sum(total(read, "tiffin_model_requests_total", of, f'outcome="{o}"') for o in ("busy", "bad_request", "error"))


CLIENT = "wrk" if wrk.available() else "aiohttp"  # --client overrides


async def run_point(
    label: str,
    load: HttpLoad | h2load.GrpcLoad | Send,
    concurrency: int,
    seconds: float,
    pid: int | None,
    batches: tuple[str, str, str | None] | None = None,
    sender: str = "python",
    **extra,
) -> dict:
    """One closed-loop measurement. `load` is a fixed POST (sent by wrk, or by aiohttp where
    wrk is missing), a fixed gRPC call (sent by h2load), or a coroutine function, named by
    `sender`, for what neither can send;
    `batches` = (metrics url, histogram, runner) to read the mean batch from."""
    b0 = batch_counters(*batches) if batches else None
    with Usage(pid) as usage:
        if isinstance(load, HttpLoad) and CLIENT == "wrk":
            row, usage.child_cpu = wrk.closed_loop(label, load, concurrency, seconds)
        elif isinstance(load, h2load.GrpcLoad):
            row, usage.child_cpu = h2load.closed_loop(label, load, concurrency, seconds)
        elif isinstance(load, HttpLoad):
            async with session() as http:
                row = (await closed_loop(label, poster(http, load), concurrency, seconds)).row() | {"client": "aiohttp"}
        else:
            row = (await closed_loop(label, load, concurrency, seconds)).row() | {"client": sender}
    row = {**row, **extra, **usage.columns(row["rps"])}
    if batches:
        b1 = batch_counters(*batches)
        row["mean_batch"] = round((b1[0] - b0[0]) / max(b1[1] - b0[1], 1), 1)
    print(
        f"  {label:<22} c={concurrency:<4} {row['rps']:>8.0f} req/s  p99 {row['p99_ms']:>8.1f} ms  errors {row['errors']}",
        flush=True,
    )
    return row


def session():
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120))


def poster(http, load: HttpLoad) -> Send:
    bodies = itertools.cycle(load.bodies or [load.body])

    async def send() -> bool:
        async with http.post(load.url, data=next(bodies), headers=load.headers) as r:
            await r.read()
            return r.status == 200

    return send


def multipart(field: str, filename: str, content_type: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    """One file field as a multipart/form-data body, built once so wrk can replay it."""
    boundary = "tiffin-bench-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
