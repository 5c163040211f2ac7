"""Prometheus series per model and version, on BentoML's /metrics beside its own: counted once
per batch on the model thread, not per request on the event loop."""

from __future__ import annotations

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ModelMetrics:
    """Created in the worker (after BentoML has set up multi-process collection), once per process."""

    _made: ModelMetrics | None = None

    def __init__(self) -> None:
        import prometheus_client as prom

        labels = ["model", "version"]
        self.requests = prom.Counter("tiffin_model_requests", "requests per model version by outcome", [*labels, "outcome"])
        self.batch_size = prom.Histogram(
            "tiffin_model_batch_size", "requests per forward pass", labels, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
        )
        self.batch_seconds = prom.Histogram("tiffin_model_batch_seconds", "compute time per batch", labels, buckets=SECONDS)
        self.queue_seconds = prom.Histogram(
            "tiffin_model_queue_wait_seconds", "queue wait of the oldest request in each batch", labels, buckets=SECONDS
        )

        # the response cache (tiffin/runtime/cache.py), per model version and worker
        self.cache_hits = prom.Counter("tiffin_cache_hits", "answers served from the response cache", labels)
        self.cache_misses = prom.Counter("tiffin_cache_misses", "cache lookups that found nothing", labels)
        self.cache_evictions = prom.Counter("tiffin_cache_evictions", "entries dropped to stay in bounds", labels)
        self.cache_bytes = prom.Gauge("tiffin_cache_bytes", "bytes the response cache holds", labels, multiprocess_mode="livesum")
        # shadow traffic (tiffin/versions/shadow.py): a candidate's answers beside the primary's
        pair = ["model", "primary", "shadow"]
        self.shadow_compared = prom.Counter("tiffin_shadow_compared", "answers compared with a shadow's", [*pair, "agree"])
        self.shadow_abs_difference = prom.Histogram(
            "tiffin_shadow_abs_difference", "|primary - shadow| of a regressor's answers", pair,
            buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500),
        )  # fmt: skip
        self.shadow_dropped = prom.Counter("tiffin_shadow_dropped", "requests the shadow could not take", ["model", "shadow"])
        # drift (tiffin/runtime/drift.py): each worker's last window, per model version
        feature = [*labels, "feature"]
        self.drift_score = prom.Gauge(
            "tiffin_drift_score", "last window's distance from the reference (K-S, or Cramér's V)", feature,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.drift_p_value = prom.Gauge(
            "tiffin_drift_p_value", "last window's p-value against the reference", feature, multiprocess_mode="livemin"
        )
        self.drift_detected = prom.Gauge(
            "tiffin_drift_detected", "1 when a worker's last window drifted", labels, multiprocess_mode="livemax"
        )
        self.drift_windows = prom.Counter("tiffin_drift_windows", "windows scored, by whether they drifted", [*labels, "drifted"])
        self.drift_dropped = prom.Counter("tiffin_drift_dropped", "batches the drift thread could not take", labels)
        # tier=auto text requests: answered by the small model, or escalated to the large one
        self.cascade = prom.Counter("tiffin_cascade", "tier=auto requests by the tier that answered", ["version", "outcome"])

    @classmethod
    def get(cls) -> ModelMetrics:
        if cls._made is None:
            cls._made = cls()
        return cls._made

    def for_model(self, name: str, version: str) -> Counted:
        return Counted(self, name, version)


class Counted:
    """One model version's series, looked up once: `on_batch` runs for every batch."""

    def __init__(self, metrics: ModelMetrics, name: str, version: str):
        self._ok = metrics.requests.labels(name, version, "ok")
        outcomes = ("busy", "bad_request", "error", "gone")
        self._refused = {o: metrics.requests.labels(name, version, o) for o in outcomes}
        self._size = metrics.batch_size.labels(name, version)
        self._seconds = metrics.batch_seconds.labels(name, version)
        self._wait = metrics.queue_seconds.labels(name, version)

    def on_batch(self, size: int, seconds: float, oldest_wait: float) -> None:
        self._ok.inc(size)
        self._size.observe(size)
        self._seconds.observe(seconds)
        self._wait.observe(oldest_wait)

    def refused(self, outcome: str, n: int = 1) -> None:
        """outcome: busy (503), bad_request (4xx), error (the model failed) or gone (its client left
        while it was queued: dropped before the model ran it)."""
        self._refused[outcome].inc(n)
