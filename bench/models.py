"""Put the benchmark models (tiffin/families/benchmark.py) into the model store once:
`python -m bench.models`. Random weights, seeded; labelled task=benchmark."""

from __future__ import annotations

import torch

from tiffin import store
from tiffin.families import benchmark, fashion
from tiffin.families.base import Family


def ensure(family: Family) -> str:
    import bentoml

    try:
        return str(bentoml.models.get(f"{family.name}:latest").tag)
    except bentoml.exceptions.NotFound:
        pass
    torch.manual_seed(0)
    if family is benchmark.RESNET50:
        net = benchmark.BenchResNet50()
        config = {"arch": family.arch, "classes": benchmark.CLASSES, "input_shape": list(benchmark.INPUT_SHAPE)}
    else:
        net = benchmark.BenchProbe()
        config = {
            "arch": family.arch,
            "classes": fashion.CLASSES,
            "input_shape": [fashion.SIDE, fashion.SIDE],
            "mean": fashion.MEAN,
            "std": fashion.STD,
        }
    parameters = sum(p.numel() for p in net.parameters())
    return store.save(
        family,
        net,
        config,
        metrics={},
        dataset="none: random weights, for benchmarks only",
        fingerprint="",
        params={"seed": 0, "parameters": parameters},
        seconds=0.0,
    )


def main() -> None:
    for family in benchmark.FAMILIES:
        print(ensure(family))


if __name__ == "__main__":
    main()
