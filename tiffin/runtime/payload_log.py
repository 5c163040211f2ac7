"""The payload log: one JSON line per answered typed request (request id, time, route, model
version, a digest of the input, the answer, latency; the raw input itself for a sampled
fraction), for audits and for turning live traffic into a data set (`tiffin logs export`).

Opt-in: TIFFIN_PAYLOAD_LOG names the file (one per worker: `<name>-w<N>.jsonl`), rotated by
the standard library's RotatingFileHandler at TIFFIN_PAYLOAD_LOG_MB, keeping
TIFFIN_PAYLOAD_LOG_FILES old files: at most MB x (FILES + 1) on disk per worker. Records are
written by a thread of their own from a bounded queue: a full queue drops the record (and
counts it), it never holds an answer up.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import logging.handlers
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tiffin.config import settings

QUEUE_BOUND = 10_000


class PayloadLog:
    def __init__(self, path: Path, max_bytes: int, backups: int, sample_inputs: float):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.sample = path, sample_inputs
        self._handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._queue: queue.Queue[str | None] = queue.Queue(QUEUE_BOUND)
        self.dropped = self._count = 0
        self._thread = threading.Thread(target=self._write, name="payload-log", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls) -> PayloadLog | None:
        config = settings()
        if not config.payload_log:
            return None
        from bentoml import server_context

        base = Path(config.payload_log)
        name = f"{base.stem}-w{server_context.worker_index or 0}{base.suffix or '.jsonl'}"
        return cls(base.with_name(name), config.payload_log_mb * 1024 * 1024, config.payload_log_files, config.payload_sample)

    def record(self, route: str, body: bytes, answer: dict, seconds: float, request_id: str | None = None) -> None:
        """Called on the event loop after an answer: builds the line and queues it."""
        self._count += 1
        entry: dict[str, Any] = {
            "id": request_id or uuid.uuid4().hex,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "route": route,
            "model": answer.get("model", ""),
            "input_sha256": hashlib.sha256(body).hexdigest(),
            "answer": answer,
            "latency_ms": round(seconds * 1000, 3),
        }
        # every k-th record, k = 1 / sample: deterministic, and cheap
        if self.sample > 0 and self._count % max(1, round(1 / self.sample)) == 0:
            entry["input_b64"] = base64.b64encode(body).decode()
        try:
            self._queue.put_nowait(json.dumps(entry))
        except queue.Full:
            self.dropped += 1

    def _write(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                return
            self._handler.emit(logging.makeLogRecord({"msg": line}))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)
        self._handler.close()
