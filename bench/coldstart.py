"""`make bench-coldstart`: seconds from start to the first answered request, per deployable:
under `bentoml serve` on this host, and as a container (the all-in-one image, and each
runner from its own image), median of 3. Containers need podman
(`make containerize containerize-split` builds the images first; TIFFIN_COLDSTART_CONTAINERS=off
skips them)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import httpx

from bench.run import ROOT, STORE
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW

PNG = (ROOT / "services/examples/ankle-boot.png").read_bytes()
TEXT = {"text": "A witty, warm film.", "tier": "small"}
# service -> (what `bentoml serve` runs, the request whose answer counts)
DEPLOYABLES = {
    "tiffin-image": ("services.image_runner:ImageRunner", ("/classify_image", {"files": {"image": ("a.png", PNG, "image/png")}})),
    "tiffin-text-small": ("services.text_runner:TextSmallRunner", ("/classify_text", {"json": TEXT})),
    "tiffin-text-large": ("services.text_runner:TextLargeRunner", ("/classify_text", {"json": {**TEXT, "tier": "large"}})),
    "tiffin-demand": ("services.demand_runner:DemandRunner", ("/predict_demand", {"json": EXAMPLE_DEMAND_ROW})),
    "tiffin": ("services.api:Tiffin", ("/classify_text", {"json": {**TEXT, "tier": "large"}})),
}


def first_answer(url: str, call: tuple[str, dict], start: float, timeout: float = 240) -> float:
    """Seconds from `start` until `call` is answered 200 (asked every 50 ms)."""
    path, kwargs = call
    while time.perf_counter() - start < timeout:
        try:
            if httpx.post(url + path, timeout=5, **kwargs).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url}{path}: no answer in {timeout} s")


def host(target: str, call: tuple[str, dict]) -> float:
    from tiffin.deploy.serve import Server

    start = time.perf_counter()
    with Server(target, ready_timeout=240) as server:
        return first_answer(server.url, call, start)


def container(service: str, call: tuple[str, dict]) -> float:
    from tiffin.deploy import containers
    from tiffin.deploy.serve import free_port

    port = free_port()
    name = f"tiffin-coldstart-{port}"
    args = [containers.ALL_IN_ONE_IMAGE] if service == "tiffin" else containers.service_args(service)
    start = time.perf_counter()
    containers.podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:3000", *args)
    try:
        return first_answer(f"http://127.0.0.1:{port}", call, start)
    finally:
        containers.podman("rm", "-f", "-t", "2", name, check=False)


def main(repeats: int = 3) -> None:
    os.environ["BENTOML_HOME"] = str(STORE)
    os.environ.setdefault("TIFFIN_DEVICE", "cpu")
    subprocess.run([sys.executable, "-m", "train.all", "--quick", "--missing"], cwd=ROOT, check=True)
    with_containers = os.environ.get("TIFFIN_COLDSTART_CONTAINERS", "on").lower() not in ("off", "0", "false", "no")
    if with_containers:
        subprocess.run(["make", "-s", "containerize", "containerize-split"], cwd=ROOT, check=True)
    from rich.console import Console
    from rich.table import Table

    title = f"start -> first answered request, median of {repeats} (min-max), {os.cpu_count()} CPU cores"
    table = Table(title=title)
    for col in ("service", "request", "bentoml serve s", "container s"):
        table.add_column(col, justify="right")
    for service, (target, call) in DEPLOYABLES.items():
        cells = []
        for run in (host, container) if with_containers else (host,):
            times = [run(target if run is host else service, call) for _ in range(repeats)]
            cells.append(f"{statistics.median(times):.1f} ({min(times):.1f}-{max(times):.1f})")
        table.add_row(service, call[0], *cells, *([] if with_containers else ["-"]))
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
