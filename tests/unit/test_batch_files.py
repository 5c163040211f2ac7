"""The file side of bulk scoring (tiffin/api/batch.py): what a crash leaves behind is read back
safely, items are read from every supported shape, and paths stay inside TIFFIN_BATCH_DIR."""

from __future__ import annotations

import json

import pytest

from tiffin.api import batch
from tiffin.api.endpoints import BadInput
from tiffin.config import settings


def test_a_line_cut_off_by_a_crash_is_dropped_and_its_item_scored_again(tmp_path):
    out = tmp_path / "answers.jsonl"
    out.write_bytes(b'{"id": "a", "label": "fresh"}\n{"id": "b", "label": "fr')
    assert batch.answered(out) == {"a"}
    assert out.read_bytes() == b'{"id": "a", "label": "fresh"}\n'
    assert batch.answered(tmp_path / "none.jsonl") == set()


def test_items_from_jsonl_csv_and_a_folder(tmp_path):
    (tmp_path / "rows.jsonl").write_text(json.dumps({"id": "x", "text": "good"}) + "\n\n" + json.dumps({"text": "bad"}) + "\n")
    assert list(batch.items(tmp_path / "rows.jsonl", "text")) == [("x", "good"), ("2", "bad")]
    (tmp_path / "rows.csv").write_text("id,text\nq,fine film\n")
    assert list(batch.items(tmp_path / "rows.csv", "text")) == [("q", "fine film")]
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "b.PNG").write_bytes(b"1")
    (tmp_path / "pics" / "a.txt").write_bytes(b"2")
    assert list(batch.items(tmp_path / "pics", "image")) == [("b.PNG", b"1")]
    (tmp_path / "no-text.jsonl").write_text(json.dumps({"id": 1}) + "\n")
    with pytest.raises(BadInput, match="needs a string field `text`"):
        list(batch.items(tmp_path / "no-text.jsonl", "text"))


def test_paths_must_stay_inside_the_batch_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TIFFIN_BATCH_DIR", raising=False)
    settings.cache_clear()
    with pytest.raises(BadInput, match="batch jobs are off"):
        batch.within_batch_dir("a.jsonl")
    monkeypatch.setenv("TIFFIN_BATCH_DIR", str(tmp_path))
    settings.cache_clear()
    try:
        assert batch.within_batch_dir("sub/a.jsonl") == tmp_path.resolve() / "sub" / "a.jsonl"
        for escape in ("../a.jsonl", "/etc/passwd", "sub/../../a"):
            with pytest.raises(BadInput, match="outside the batch folder"):
                batch.within_batch_dir(escape)
    finally:
        monkeypatch.delenv("TIFFIN_BATCH_DIR")
        settings.cache_clear()
