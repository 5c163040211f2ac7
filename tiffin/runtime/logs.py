"""Structured logs: with TIFFIN_LOG_FORMAT=json (set in the container images), every
record BentoML's worker logging writes to stdout/stderr becomes one JSON object per line,
which log collectors on serverless platforms and Kubernetes parse without rules."""

from __future__ import annotations

import json
import logging
import time

from tiffin import config


def _service() -> tuple[str, str]:
    """(service name, component such as "service:tiffin-image:1") of this worker, read when a
    record is written: BentoML's own `component` is cached by the first record, which in a
    container can come before the worker knows its service (it read "[:1]")."""
    try:
        from bentoml._internal.context import server_context
    except ImportError:
        return "", ""
    name = server_context.service_name or ""
    parts = [server_context.service_type or "", name, str(server_context.worker_index or "")]
    return name, ":".join(p for p in parts if p)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        service, component = _service()
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "service": service,
            "component": component,
            "message": record.getMessage(),
        }
        for key in ("trace_id", "span_id"):
            value = getattr(record, key, None)
            if value not in (None, "", 0):
                entry[key] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(settings: config.Settings | None = None) -> None:
    """Called by each service's __init__, after BentoML has configured its worker's logging."""
    if (settings or config.settings()).log_format != "json":
        return
    formatter = JsonFormatter()
    seen = set()
    for logger in (logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))):
        for handler in getattr(logger, "handlers", []):
            if id(handler) not in seen and isinstance(handler, logging.StreamHandler):
                seen.add(id(handler))
                handler.setFormatter(formatter)
