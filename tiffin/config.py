"""Every `TIFFIN_*` setting, read from the environment once per process into one frozen object.

    from tiffin.config import settings
    settings().hot_max_queue

A value that cannot be read fails at once with `SettingsError`, naming the variable and what
it accepts; nothing falls back silently. Imports nothing outside the standard library, so the
client can read it too.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tiffin.wire import limits


class SettingsError(ValueError):
    """A `TIFFIN_*` variable holds a value it cannot take; the message names both."""


ON, OFF = ("on", "true", "1", "yes"), ("off", "false", "0", "no")
CUDA_GRAPH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)  # batch sizes with a captured graph each
# TIFFIN_* names that belong to the tests and the bench, not to tiffin itself
NOT_SETTINGS = ("TIFFIN_TEST_STORE", "TIFFIN_WRK_")
log = logging.getLogger("tiffin")


def on_off(name: str, raw: str) -> bool:
    """The one reading of a switch: on/true/1/yes or off/false/0/no, in any case."""
    value = raw.strip().lower()
    if value in ON or value in OFF:
        return value in ON
    raise SettingsError(f"{name}={raw!r}: use one of {', '.join(ON)} or {', '.join(OFF)}")


def _number(kind: type, low: float | None = None, high: float | None = None) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected {'a whole number' if kind is int else 'a number'}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"from {low} to {high}"
            raise SettingsError(f"{name}={raw!r}: expected a number {bounds}")
        return value

    return parse


def _buckets(name: str, raw: str) -> tuple[int, ...]:
    try:
        buckets = tuple(sorted({int(b) for b in raw.split(",") if b.strip()}))
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected comma-separated batch sizes, e.g. 1,8,32,128") from None
    if not buckets or buckets[0] < 1:
        raise SettingsError(f"{name}={raw!r}: batch sizes must be at least 1")
    return buckets


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise SettingsError(f"{name}={raw!r}: use one of {', '.join(choices)}")
        return value

    return parse


def _names(name: str, raw: str) -> tuple[str, ...]:
    """off, all, or comma-separated model names."""
    value = raw.strip().lower()
    if value in OFF:
        return ()
    if value == "all":
        return ("all",)
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if not names or any(not n.replace("-", "").replace("_", "").isalnum() for n in names):
        raise SettingsError(f"{name}={raw!r}: use off, all, or model names separated by commas (e.g. fashion-cnn,review-minilm)")
    return names


def _urls(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """`service=url` pairs separated by spaces or commas, as BENTOML_SERVE_DEPENDS writes them."""
    pairs = tuple(tuple(p.split("=", 1)) for p in raw.replace(",", " ").split())
    if any(len(p) != 2 or not p[0] or not p[1].startswith(("http://", "https://")) for p in pairs):
        raise SettingsError(f"{name}={raw!r}: use service=URL pairs, e.g. tiffin-image=http://tiffin-image:3000")
    return pairs  # type: ignore[return-value]


def _text(name: str, raw: str) -> str:
    return raw.strip()  # from_env passes no blank value


def _env(name: str, parse: Callable[[str, str], Any], default: Any) -> Any:
    return field(default=default, metadata={"env": name, "parse": parse})


@dataclass(frozen=True)
class Settings:
    # model-store tag each service loads (NAME:latest when unset); the families name their field
    image_model: str | None = _env("TIFFIN_IMAGE_MODEL", _text, None)
    text_small_model: str | None = _env("TIFFIN_TEXT_SMALL_MODEL", _text, None)
    text_large_model: str | None = _env("TIFFIN_TEXT_LARGE_MODEL", _text, None)
    demand_model: str | None = _env("TIFFIN_DEMAND_MODEL", _text, None)
    bench_model: str | None = _env("TIFFIN_BENCH_MODEL", _text, None)
    device: str | None = _env("TIFFIN_DEVICE", _text, None)  # None: cuda when present, else cpu
    # versions (tiffin/versions): the alias a service serves when no tag is set, the book that
    # holds aliases (default beside the store), how often a worker looks for a move (0: never)
    model_alias: str = _env("TIFFIN_MODEL_ALIAS", _text, "production")
    aliases_file: str | None = _env("TIFFIN_ALIASES_FILE", _text, None)
    alias_poll_s: float = _env("TIFFIN_ALIAS_POLL_S", _number(float, 0.0), 1.0)
    # the gateway (tiffin/runtime/remote.py): how often each worker asks every runner's /readyz (0: never)
    runner_probe_s: float = _env("TIFFIN_RUNNER_PROBE_S", _number(float, 0.0), 1.0)
    # the gateway's runners deployed as bentos of their own (a container image each): BentoML's
    # `bentoml.depends(url=...)`, which speaks JSON. BENTOML_SERVE_DEPENDS is for the services
    # of one bento deployed apart (BentoCloud's way): BentoML sends those pickles, which a
    # bento's own main service refuses (415).
    runner_urls: tuple[tuple[str, str], ...] = _env("TIFFIN_RUNNER_URLS", _urls, ())
    # the typed API
    # None: the small model's own (chosen at training for a target escalation rate), else catalog's
    cascade_threshold: float | None = _env("TIFFIN_CASCADE_THRESHOLD", _number(float, 0.0, 1.0), None)
    max_image_bytes: int = _env("TIFFIN_MAX_IMAGE_BYTES", _number(int, 1), limits.MAX_IMAGE_BYTES)
    max_json_bytes: int = _env("TIFFIN_MAX_JSON_BYTES", _number(int, 1), limits.MAX_JSON_BYTES)
    # API keys (tiffin/api/keys.py): entries NAME:SHA256:SCOPES[:RATE/BURST]; a JSON file, re-read
    api_keys: str | None = _env("TIFFIN_API_KEYS", lambda name, raw: raw, None)
    api_keys_file: str | None = _env("TIFFIN_API_KEYS_FILE", _text, None)
    # the payload log (tiffin/runtime/payload_log.py): off unless a file is named
    payload_log: str | None = _env("TIFFIN_PAYLOAD_LOG", _text, None)
    payload_log_mb: int = _env("TIFFIN_PAYLOAD_LOG_MB", _number(int, 1), 64)
    payload_log_files: int = _env("TIFFIN_PAYLOAD_LOG_FILES", _number(int, 0), 4)
    payload_sample: float = _env("TIFFIN_PAYLOAD_SAMPLE", _number(float, 0.0, 1.0), 0.0)
    # bulk scoring (tiffin/api/batch.py): the folder batch jobs read and write on the server; unset: off
    batch_dir: str | None = _env("TIFFIN_BATCH_DIR", _text, None)
    # the response cache (tiffin/runtime/cache.py): off, all, or model names; its bound per
    # served version and worker; the age past which an entry is not used (0: none)
    cache: tuple[str, ...] = _env("TIFFIN_CACHE", _names, ())
    cache_mb: float = _env("TIFFIN_CACHE_MB", _number(float, 0.001), 64.0)
    cache_ttl_s: float = _env("TIFFIN_CACHE_TTL_S", _number(float, 0.0), 0.0)
    # BentoML's uvicorn (tiffin/runtime/http_limits.py): headers within, body within, per worker
    http_header_timeout_s: float = _env("TIFFIN_HTTP_HEADER_TIMEOUT_S", _number(float, 0.1), 10.0)
    http_body_timeout_s: float = _env("TIFFIN_HTTP_BODY_TIMEOUT_S", _number(float, 0.1), 30.0)
    http_max_connections: int = _env("TIFFIN_HTTP_MAX_CONNECTIONS", _number(int, 1), 1024)
    # drift (tiffin/runtime/drift.py): items per window and worker; a window drifts when a
    # feature's p-value is below alpha / features
    drift: bool = _env("TIFFIN_DRIFT", on_off, True)
    drift_window: int = _env("TIFFIN_DRIFT_WINDOW", _number(int, 50), 500)
    drift_alpha: float = _env("TIFFIN_DRIFT_ALPHA", _number(float, 1e-9, 0.5), 0.01)
    # where a shadow's disagreements go (tiffin/versions/shadow.py); default beside the store
    shadow_log: str | None = _env("TIFFIN_SHADOW_LOG", _text, None)
    # off: the typed routes and /v2 go through BentoML's own request path (tiffin/api/frontdoor.py)
    front_door: bool = _env("TIFFIN_FRONT_DOOR", on_off, True)
    grpc_host: str = _env("TIFFIN_GRPC_HOST", _text, "0.0.0.0")
    grpc_port: int = _env("TIFFIN_GRPC_PORT", _number(int, 1, 65535), limits.GRPC_PORT)
    # every model's batcher (the names keep the hot path's, where they began)
    hot_max_batch: int | None = _env("TIFFIN_HOT_MAX_BATCH", _number(int, 1), None)  # None: by device
    hot_max_wait_ms: float = _env("TIFFIN_HOT_MAX_WAIT_MS", _number(float, 0.0), 0.0)
    hot_max_queue: int = _env("TIFFIN_HOT_MAX_QUEUE", _number(int, 1), 1024)
    hot_deadline_s: float = _env("TIFFIN_HOT_DEADLINE_S", _number(float, 0.0), 10.0)
    # how the image runner lays itself out (tiffin/runtime/layout.py); None: worked out
    cpu_cores: int | None = _env("TIFFIN_CPU_CORES", _number(int, 1), None)
    image_workers: int | None = _env("TIFFIN_IMAGE_WORKERS", _number(int, 1), None)
    api_workers: int | None = _env("TIFFIN_API_WORKERS", _number(int, 1), None)  # the all-in-one API's
    hot_model_threads: int | None = _env("TIFFIN_HOT_MODEL_THREADS", _number(int, 1), None)
    torch_threads: int | None = _env("TIFFIN_TORCH_THREADS", _number(int, 1), None)
    gil_switch_ms: float = _env("TIFFIN_GIL_SWITCH_MS", _number(float, 0.001), 0.1)
    # off: inside containers BentoML leaves a dead worker dead (tiffin/runtime/respawn.py)
    respawn: bool = _env("TIFFIN_RESPAWN", on_off, True)
    # process tuning
    malloc_tuning: bool = _env("TIFFIN_MALLOC_TUNING", on_off, True)
    gc_freeze: bool = _env("TIFFIN_GC_FREEZE", on_off, True)
    cuda_graphs: bool = _env("TIFFIN_CUDA_GRAPHS", on_off, True)
    torchscript: bool = _env("TIFFIN_TORCHSCRIPT", on_off, True)  # CPU forwards as frozen graphs (019)
    cuda_graph_buckets: tuple[int, ...] = _env("TIFFIN_CUDA_GRAPH_BUCKETS", _buckets, CUDA_GRAPH_BUCKETS)
    log_format: str = _env("TIFFIN_LOG_FORMAT", _choice("plain", "json"), "plain")
    # training
    train_threads: int | None = _env("TIFFIN_TRAIN_THREADS", _number(int, 1), None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw.strip():
                values[f.name] = f.metadata["parse"](f.metadata["env"], raw)
        known = {f.metadata["env"] for f in dataclasses.fields(cls)}
        for name in sorted(n for n in environ if n.startswith("TIFFIN_") and n not in known and not n.startswith(NOT_SETTINGS)):
            # a misspelt name would otherwise be ignored without a word
            log.warning("%s is not a tiffin setting and is ignored; the settings are: %s", name, ", ".join(sorted(known)))
        return cls(**values)


def env_name(setting: str) -> str:
    """The variable behind a field: env_name("image_model") -> "TIFFIN_IMAGE_MODEL"."""
    for f in dataclasses.fields(Settings):
        if f.name == setting:
            return f.metadata["env"]
    raise KeyError(f"{setting!r} is not a field of tiffin.config.Settings")


@functools.cache
def settings() -> Settings:
    """This process's settings, read on first use."""
    return Settings.from_env()
