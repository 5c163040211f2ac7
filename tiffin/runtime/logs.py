"""Structured logs: with TIFFIN_LOG_FORMAT=json (set in the container images), every
record BentoML's worker logging writes to stdout/stderr becomes one JSON object per line,
which log collectors on serverless platforms and Kubernetes parse without rules."""

from __future__ import annotations

import json
import logging
import time

from tiffin import config


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("trace_id", "span_id", "component"):
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
