"""`tiffin logs export`: payload logs (tiffin/runtime/payload_log.py) into data sets a training
script can take, one per route: the inputs that were logged with their answers as labels
(model predictions: review them before training on them).

    DIR/images/<sha256>.png|.jpg + DIR/images.jsonl   {"file", "label", "model"}
    DIR/texts.jsonl                                   {"text", "label", "probability", "model"}
    DIR/demand.jsonl                                  the row's features + {"bikers", "model"}
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path


def export(files: list[Path], out: Path) -> Counter:
    """Returns what was written per data set, and how many records had no input or repeated one."""
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    seen: set[str] = set()
    sinks = {name: (out / f"{name}.jsonl").open("w", encoding="utf-8") for name in ("images", "texts", "demand")}
    try:
        for path in files:
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if "input_b64" not in record:
                    counts["without input"] += 1
                    continue
                if record["input_sha256"] in seen:
                    counts["repeated"] += 1
                    continue
                seen.add(record["input_sha256"])
                data, answer = base64.b64decode(record["input_b64"]), record["answer"]
                if record["route"] == "/classify_image":
                    name = record["input_sha256"] + (".png" if data.startswith(b"\x89PNG") else ".jpg")
                    (out / "images").mkdir(exist_ok=True)
                    (out / "images" / name).write_bytes(data)
                    row, sink = {"file": f"images/{name}", "label": answer["label"], "model": answer["model"]}, "images"
                elif record["route"] == "/classify_text":
                    text = json.loads(data)["text"]
                    row = {"text": text, "label": answer["label"], "probability": answer["probability"], "model": answer["model"]}
                    sink = "texts"
                else:
                    row, sink = {**json.loads(data), "bikers": answer["bikers"], "model": answer["model"]}, "demand"
                sinks[sink].write(json.dumps(row) + "\n")
                counts[sink] += 1
    finally:
        for f in sinks.values():
            f.close()
    return counts
