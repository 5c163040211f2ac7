"""The alias book on its own: names, the rollback stack, pins, concurrent writers, and which
tag a service loads."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from tiffin import config
from tiffin.families import fashion
from tiffin.versions import AliasError, Book, followed, resolve


def test_aliases_that_read_as_versions_or_are_not_names_are_refused(tmp_path):
    book = Book(tmp_path / "aliases.json")
    for alias in ("latest", "LATEST", "v1", "v0042", "", "Prod", "1st", "a b", "x" * 64):
        with pytest.raises(AliasError):
            book.move("m", alias, "abc", action="promote")
    for alias in ("production", "staging", "v1-candidate", "canary_2"):
        book.move("m", alias, "abc", action="promote")
    assert book.aliases_of("m") == dict.fromkeys(("production", "staging", "v1-candidate", "canary_2"), "abc")


def test_rollback_walks_back_through_every_earlier_holder(tmp_path):
    book = Book(tmp_path / "aliases.json")
    for version in ("a", "b", "c"):
        book.move("m", "production", version, action="promote", why=f"to {version}", by="ana@host")
    with pytest.raises(AliasError, match="already names c"):
        book.move("m", "production", "c", action="promote")
    assert [book.rollback("m")["to"], book.rollback("m")["to"]] == ["b", "a"]
    with pytest.raises(AliasError, match="nothing to roll back to"):
        book.rollback("m")
    with pytest.raises(AliasError, match="no alias 'staging'"):
        book.rollback("m", "staging")
    moves = book.history("m")
    assert [(m["action"], m["from"], m["to"]) for m in moves] == [
        ("promote", None, "a"),
        ("promote", "a", "b"),
        ("promote", "b", "c"),
        ("rollback", "c", "b"),
        ("rollback", "b", "a"),
    ]
    assert [m["revision"] for m in moves] == [1, 2, 3, 4, 5] and moves[0]["who"] == "ana@host"
    assert book.read()["revision"] == 5


def test_a_pin_holds_the_alias_until_released(tmp_path):
    book = Book(tmp_path / "aliases.json")
    book.move("m", "production", "a", action="promote")
    book.pin("m", "production", "b", why="incident 12")
    assert book.resolve("m") == "b"
    for move in (lambda: book.move("m", "production", "c", action="promote"), lambda: book.rollback("m")):
        with pytest.raises(AliasError, match="pinned to b .* \\(incident 12\\)"):
            move()
    book.unpin("m", "production")
    with pytest.raises(AliasError, match="is not pinned"):
        book.unpin("m", "production")
    assert book.rollback("m")["to"] == "a"


def _writer(path: str, n: int, who: str) -> None:
    book = Book(path)
    for i in range(n):
        book.move("m", "production", f"{who}-{i}", action="promote", by=who)


def test_writers_in_many_processes_lose_no_move_and_readers_never_see_half_a_file(tmp_path):
    path = tmp_path / "aliases.json"
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(str(path), 25, f"w{i}")) for i in range(4)]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers):
        if path.exists():
            json.loads(path.read_text())  # whole, every time: the file is replaced, never rewritten in place
            reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    data = Book(path).read()
    assert data["revision"] == 100 and len(data["history"]) == 100
    assert [m["revision"] for m in data["history"]] == list(range(1, 101))
    assert len(data["aliases"]["m"]["production"]["previous"]) == 99 and reads > 0


def test_which_tag_a_service_loads(tmp_path, monkeypatch):
    book = tmp_path / "aliases.json"
    monkeypatch.setenv("TIFFIN_ALIASES_FILE", str(book))
    monkeypatch.delenv("TIFFIN_IMAGE_MODEL", raising=False)
    config.settings.cache_clear()
    try:
        assert resolve(fashion.FAMILY) == "fashion-cnn:latest"  # no alias yet: the newest
        assert followed(fashion.FAMILY) == ("fashion-cnn", "production")
        Book(book).move("fashion-cnn", "production", "abc", action="promote")
        Book(book).move("fashion-cnn", "staging", "def", action="promote")
        assert resolve(fashion.FAMILY) == "fashion-cnn:abc"
        monkeypatch.setenv("TIFFIN_MODEL_ALIAS", "staging")
        config.settings.cache_clear()
        assert resolve(fashion.FAMILY) == "fashion-cnn:def"
        monkeypatch.setenv("TIFFIN_IMAGE_MODEL", "fashion-cnn:pinned1")  # a fixed version is not followed
        config.settings.cache_clear()
        assert resolve(fashion.FAMILY) == "fashion-cnn:pinned1" and followed(fashion.FAMILY) is None
        monkeypatch.setenv("TIFFIN_IMAGE_MODEL", "fashion-cnn@production")
        config.settings.cache_clear()
        assert resolve(fashion.FAMILY) == "fashion-cnn:abc"
        monkeypatch.setenv("TIFFIN_IMAGE_MODEL", "fashion-cnn@nightly")  # named, and missing: said at once
        config.settings.cache_clear()
        with pytest.raises(AliasError, match="TIFFIN_IMAGE_MODEL=fashion-cnn@nightly.*no fashion-cnn@nightly"):
            resolve(fashion.FAMILY)
    finally:
        config.settings.cache_clear()


def test_a_book_mounted_from_a_config_map_is_seen_to_change(tmp_path):
    """The kubelet's layout for a mounted ConfigMap: the file is a link through `..data`, a
    link to a timestamped folder, and an update swaps `..data` in one rename. The workers poll
    `stamp()`, which follows the links, so they see the swap; they only read the book."""
    import os

    def publish(n: int, version: str) -> None:
        folder = tmp_path / f"..2026_12_02_{n}"
        folder.mkdir()
        entry = {"version": version, "previous": [], "pin": None}
        (folder / "tiffin-aliases.json").write_text(
            json.dumps({"revision": n, "aliases": {"fashion-cnn": {"production": entry}}, "history": []})
        )
        os.symlink(folder.name, tmp_path / "..data_tmp")
        os.rename(tmp_path / "..data_tmp", tmp_path / "..data")

    publish(1, "abc")
    os.symlink("..data/tiffin-aliases.json", tmp_path / "tiffin-aliases.json")
    book = Book(tmp_path / "tiffin-aliases.json")
    before = book.stamp()
    assert book.resolve("fashion-cnn") == "abc"
    publish(2, "def")
    assert book.stamp() != before and book.resolve("fashion-cnn") == "def"
