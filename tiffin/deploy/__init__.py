"""Getting tiffin onto a platform: Kubernetes manifests, pinned requirements for bentos, and
a local `bentoml serve` process for tests and benchmarks."""
