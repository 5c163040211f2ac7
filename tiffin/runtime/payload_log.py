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


class JsonLines:
    """A bounded JSON-lines file written by a thread of its own from a bounded queue: at most
    `max_bytes` x (`backups` + 1) on disk; `put` drops (and counts) a line when the queue is
    full rather than wait. The payload log's writer, and the shadow's disagreements."""

    def __init__(self, path: Path, max_bytes: int, backups: int, name: str = "jsonl"):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._queue: queue.Queue[str | None] = queue.Queue(QUEUE_BOUND)
        self.dropped = 0
        self._thread = threading.Thread(target=self._write, name=name, daemon=True)
        self._thread.start()

    def put(self, entry: dict[str, Any]) -> bool:
        try:
            self._queue.put_nowait(json.dumps(entry))
            return True
        except queue.Full:
            self.dropped += 1
            return False

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


class PayloadLog:
    def __init__(self, path: Path, max_bytes: int, backups: int, sample_inputs: float):
        self.path, self.sample = path, sample_inputs
        self._lines = JsonLines(path, max_bytes, backups, "payload-log")
        self._count = 0

    @property
    def dropped(self) -> int:
        return self._lines.dropped

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
        self._lines.put(entry)

    def close(self) -> None:
        self._lines.close()
