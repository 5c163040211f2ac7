"""Closed-loop gRPC load from h2load (nghttp2's HTTP/2 load generator, C; Debian's
nghttp2-client): `concurrency` connections, one request in flight on each, every request the
same length-prefixed protobuf message. The Python grpc.aio client it replaces spent more of
the 2 cores than the server it measured (the OIP gRPC row read 0.44-0.51 of the typed route
with it). h2load sees HTTP/2 statuses only, and a failed RPC still answers 200 (its
grpc-status is in the trailers): `closed_loop` sends the message once through grpcio first,
and the caller counts failures on the server's side. Same row shape as bench/wrk.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# h2load's summary: "requests: N total, N started, N done, N succeeded, N failed, ..."; the
# failed, errored and timed-out requests are among those done
DONE = re.compile(r"requests: \d+ total, \d+ started, (\d+) done")


def available() -> bool:
    return shutil.which("h2load") is not None


@dataclass
class GrpcLoad:
    """One unary call, sent over and over: `method` is "/package.Service/Method"."""

    target: str  # host:port, plaintext HTTP/2
    method: str
    message: bytes  # the serialized request

    def framed(self) -> bytes:
        """gRPC's message framing: not compressed (0), then the length, big-endian."""
        return b"\x00" + len(self.message).to_bytes(4, "big") + self.message

    def check(self) -> None:
        """One call through grpcio, raising its RpcError when the server refuses the message."""
        import grpc

        with grpc.insecure_channel(self.target) as channel:
            channel.unary_unary(self.method)(self.message, timeout=30)


def _percentile(sorted_us: list[int], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))] / 1000 if sorted_us else float("nan")


def closed_loop(label: str, load: GrpcLoad, concurrency: int, seconds: float, warmup: float = 1) -> tuple[dict, float]:
    """(row, load generator CPU seconds) for `seconds` of load after `warmup` seconds unmeasured."""
    load.check()
    with tempfile.TemporaryDirectory(prefix="tiffin-h2load-") as tmp:
        body, log = Path(tmp) / "message", Path(tmp) / "requests.tsv"
        body.write_bytes(load.framed())
        command = [
            "h2load",
            f"http://{load.target}{load.method}",
            "--data",
            str(body),
            "--header",
            "content-type: application/grpc",
            "--header",
            "te: trailers",
            f"--clients={concurrency}",
            "--max-concurrent-streams=1",
            # one thread on our 2 cores, as wrk; a quarter of the cores on a larger machine
            f"--threads={max(1, min(concurrency, (os.cpu_count() or 1) // 4))}",
            f"--duration={max(1, round(seconds * 1000))}ms",
            f"--warm-up-time={max(1, round(warmup * 1000))}ms",
            f"--log-file={log}",
        ]
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own CPU time, as for wrk
            out.seek(0)
            text = out.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0 or "requests:" not in text:
            raise RuntimeError(f"h2load failed: {text[-2000:]}")
        # start (µs since the epoch), HTTP status, µs to the end of the answer: one line per request
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    done = int(DONE.search(text).group(1))
    ok = sum(1 for r in rows if r[1] == "200")
    latencies = sorted(int(r[2]) for r in rows)
    return {
        "label": label,
        "concurrency": concurrency,
        "requests": done,
        "rps": round(ok / seconds, 1),
        "p50_ms": round(_percentile(latencies, 0.5), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "errors": done - ok,
        "client": "h2load",
    }, usage.ru_utime + usage.ru_stime
