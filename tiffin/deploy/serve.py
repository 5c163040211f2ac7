"""Start a real `bentoml serve` process on free ports, wait until it is ready, and stop it:
for the tests, `make bench` and `make bench-coldstart`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_ports(n: int = 1) -> list[int]:
    """`n` distinct free ports: held open together while they are picked, since one socket
    closed and another opened can be handed the same port (a server then could not bind its
    gRPC port, the same as its HTTP one, and its workers restarted over and over)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


class Server:
    def __init__(self, target: str = "services.api:Tiffin", env: dict[str, str] | None = None, ready_timeout: float = 180):
        self.target, (self.port, self.grpc_port) = target, free_ports(2)
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.fast_url = self.url + "/fast"  # the image hot path
        self.env = {**os.environ, "TIFFIN_GRPC_HOST": "127.0.0.1", "TIFFIN_GRPC_PORT": str(self.grpc_port), **(env or {})}
        self.ready_timeout = ready_timeout
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tiffin-serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.ready_seconds = float("nan")

    def _own_home(self) -> None:
        """A BENTOML_HOME of its own whose model store and bentos are the shared ones: `bentoml
        serve` empties $BENTOML_HOME/prometheus_multiproc_dir when it starts, which would wipe
        the metrics of every other server running on the same home."""
        shared = Path(self.env.get("BENTOML_HOME", Path.home() / "bentoml"))
        self._home = tempfile.TemporaryDirectory(prefix="tiffin-home-")
        for part in ("models", "bentos"):
            (shared / part).mkdir(parents=True, exist_ok=True)
            (Path(self._home.name) / part).symlink_to(shared / part)
        self.env["BENTOML_HOME"] = self._home.name
        # the alias book beside the shared store (tiffin/versions/book.py), not beside this home
        if not self.env.get("TIFFIN_ALIASES_FILE", "").strip():
            self.env["TIFFIN_ALIASES_FILE"] = str(shared / "tiffin-aliases.json")

    def __enter__(self) -> Server:
        self._own_home()
        self.log = self.log_path.open("wb")
        start = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", self.target, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = start + self.ready_timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    self.ready_seconds = time.perf_counter() - start
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.__exit__(None, None, None)
        raise TimeoutError(f"{self.target} not ready in {self.ready_timeout} s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        import psutil

        return {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.log.close()
        self._home.cleanup()
