"""Put the benchmark models (tiffin/benchmodels.py) into the model store once:
`python -m bench.models`. Random weights, seeded; labelled task=benchmark."""

from __future__ import annotations

import torch

from tiffin import benchmodels, image, store


def ensure(spec: store.ModelSpec) -> str:
    import bentoml

    try:
        return str(bentoml.models.get(f"{spec.name}:latest").tag)
    except bentoml.exceptions.NotFound:
        pass
    torch.manual_seed(0)
    if spec is store.BENCH_RESNET50:
        net = benchmodels.BenchResNet50()
        config = {"arch": "BenchResNet50", "classes": benchmodels.CLASSES, "input_shape": list(benchmodels.INPUT_SHAPE)}
    else:
        net = benchmodels.BenchProbe()
        config = {"arch": "BenchProbe", "classes": image.CLASSES, "input_shape": [image.SIDE, image.SIDE],
                  "mean": image.MEAN, "std": image.STD}
    parameters = sum(p.numel() for p in net.parameters())
    return store.save(spec, net, config, metrics={}, dataset="none: random weights, for benchmarks only", fingerprint="",
                      params={"seed": 0, "parameters": parameters}, seconds=0.0)


def main() -> None:
    for spec in (store.BENCH_RESNET50, store.BENCH_PROBE):
        print(ensure(spec))


if __name__ == "__main__":
    main()
