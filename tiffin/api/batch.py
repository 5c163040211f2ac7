"""Bulk scoring, the serverless "function triggered by an upload" case: every item of a file
(JSONL or CSV rows) or of a folder of images, scored through the served models' batchers
(the same as the typed routes: `Endpoints`), the answers appended to a JSONL file.

It runs as a BentoML task (`POST /batch/submit`, `GET /batch/status`, `GET /batch/get`;
`tiffin batch` drives it), so a platform runs it asynchronously. Resumable: each chunk's
answers are written in one write and fsynced, one line per item naming its `id`; a job run
again on the same output first drops a line cut off by a crash, then skips every id already
answered, so after a crash no item is lost or answered twice. Paths are read on the server
and must lie under TIFFIN_BATCH_DIR (unset: batch jobs are off).
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tiffin.api.endpoints import BadInput, Endpoints
from tiffin.config import settings
from tiffin.runtime.batcher import Overloaded
from tiffin.wire.schemas import BatchKind as Kind
from tiffin.wire.schemas import DemandFeatures

log = logging.getLogger("tiffin")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHUNK = 64  # items in flight at once: a full image batch, far below the queue bound


def within_batch_dir(path: str) -> Path:
    """`path` resolved, refused unless it lies under TIFFIN_BATCH_DIR. Refusals are 400s:
    BentoML replaces a 401/403 task error's message with "Authorization error", and the
    message is what tells the caller what to fix."""
    root = settings().batch_dir
    if not root:
        raise BadInput("batch jobs are off on this server: set TIFFIN_BATCH_DIR to the folder they may read and write")
    base, resolved = Path(root).resolve(), (Path(root) / path).resolve()
    if not resolved.is_relative_to(base):
        raise BadInput(f"{path}: outside the batch folder (TIFFIN_BATCH_DIR); give a path inside it")
    return resolved


def items(path: Path, kind: Kind) -> Iterator[tuple[str, Any]]:
    """(id, what the endpoint takes) per item. Images: a folder's PNG/JPEG files, id = file
    name. Rows: JSONL objects or CSV rows, id = their `id` field, else the line number;
    text rows carry `text`, demand rows the DemandFeatures fields."""
    if kind == "image":
        if not path.is_dir():
            raise BadInput(f"{path.name}: image jobs read a folder of PNG/JPEG files")
        for file in sorted(path.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                yield file.name, file.read_bytes()
        return
    if not path.is_file():
        raise BadInput(f"{path.name}: no such file")
    with path.open(newline="") as fh:
        rows = csv.DictReader(fh) if path.suffix.lower() == ".csv" else (json.loads(line) for line in fh if line.strip())
        for number, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise BadInput(f"{path.name} line {number}: expected an object")
            item_id = str(row.pop("id", number))
            if kind == "text":
                if not isinstance(row.get("text"), str):
                    raise BadInput(f"{path.name} item {item_id}: needs a string field `text`")
                yield item_id, row["text"]
            else:
                try:
                    yield item_id, DemandFeatures.model_validate(row).model_dump()
                except ValidationError as exc:
                    raise BadInput(f"{path.name} item {item_id}: {exc.errors()[0]['msg']}") from None


def answered(output: Path) -> set[str]:
    """The ids `output` already holds; a last line cut off by a crash is dropped first."""
    if not output.exists():
        return set()
    data = output.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        log.warning("batch %s: dropping a line cut off at byte %d", output, len(whole))
        with output.open("r+b") as fh:
            fh.truncate(len(whole))
    return {json.loads(line)["id"] for line in whole.splitlines() if line.strip()}


async def _answer(endpoints: Endpoints, kind: Kind, payload: Any, tier: str) -> dict:
    while True:
        try:
            if kind == "image":
                return await endpoints.classify_image(payload)
            if kind == "text":
                return await endpoints.classify_text(payload, tier)
            return await endpoints.predict_demand(payload)
        except Overloaded as exc:  # the live traffic comes first: wait as told, then again
            await asyncio.sleep(exc.retry_after)
        except BadInput as exc:
            return {"error": str(exc)}


def _append(out: Any, lines: str) -> None:
    out.write(lines)
    out.flush()
    os.fsync(out.fileno())


async def run(endpoints: Endpoints, input: str, output: str, kind: Kind, tier: str = "small") -> dict:
    source, target = within_batch_dir(input), within_batch_dir(output)
    done = answered(target)
    resumed, scored, failed, seen = len(done), 0, 0, set()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as out:
        pending: list[tuple[str, Any]] = []

        async def flush() -> None:
            nonlocal scored, failed
            answers = await asyncio.gather(*(_answer(endpoints, kind, p, tier) for _, p in pending))
            lines = "".join(json.dumps({"id": i, **a}) + "\n" for (i, _), a in zip(pending, answers, strict=True))
            await asyncio.to_thread(_append, out, lines)  # an fsync must not hold the live routes' loop
            scored += len(pending)
            failed += sum("error" in a for a in answers)
            pending.clear()
            log.info("batch %s: %d answered, %d this run", target.name, resumed + scored, scored)

        for item_id, payload in items(source, kind):
            if item_id in seen:
                raise BadInput(f"{source.name}: id {item_id} appears twice; ids must be unique to resume safely")
            seen.add(item_id)
            if item_id not in done:
                pending.append((item_id, payload))
                if len(pending) == CHUNK:
                    await flush()
        if pending:
            await flush()
    return {"input": input, "output": output, "items": len(seen), "resumed_from": resumed, "scored": scored, "failed": failed}
