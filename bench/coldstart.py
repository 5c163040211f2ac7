"""`make bench-coldstart`: seconds from `bentoml serve` starting to `/readyz` answering 200,
for each deployable (the API with all runners, and each runner on its own)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from bench.run import ROOT, STORE

TARGETS = [
    "services.image_runner:ImageRunner",
    "services.text_runner:TextSmallRunner",
    "services.text_runner:TextLargeRunner",
    "services.demand_runner:DemandRunner",
    "services.api:Tiffin",
]


def main(repeats: int = 3) -> None:
    os.environ["BENTOML_HOME"] = str(STORE)
    os.environ.setdefault("TIFFIN_DEVICE", "cpu")
    subprocess.run([sys.executable, "-m", "train.all", "--quick", "--missing"], cwd=ROOT, check=True)
    from rich.console import Console
    from rich.table import Table

    from tiffin.deploy.serve import Server

    table = Table(title=f"bentoml serve: start -> /readyz 200 ({repeats} runs, {os.cpu_count()} CPU cores)")
    for col in ("service", "median s", "min s", "max s"):
        table.add_column(col, justify="right")
    for target in TARGETS:
        runs = []
        for _ in range(repeats):
            with Server(target, ready_timeout=240) as server:
                runs.append(server.ready_seconds)
        table.add_row(target, f"{statistics.median(runs):.2f}", f"{min(runs):.2f}", f"{max(runs):.2f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
