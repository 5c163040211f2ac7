"""Offline archives of one model version: `tiffin models export REF FILE` / `import FILE`.

An archive is a gzipped tar of BentoML's own folder export (`model/`, which
`bentoml.models.import_model(..., "folder")` reads back) and `tiffin-manifest.json`: the tag,
the aliases it held when exported, and the sha256 and size of every file. Import extracts with
tarfile's `data` filter (no links out, no absolute paths, no devices), refuses any file that is
missing, extra or does not match its digest, and only then adds the version to the store.
The manifest detects damage and tampering with the files; it is not a signature: whoever can
rewrite the archive can rewrite the manifest too (sign the file, or compare the sha256 printed
at export, when that matters).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from pathlib import Path

from tiffin.versions.book import Book
from tiffin.versions.manage import find

MANIFEST = "tiffin-manifest.json"
FORMAT = 1


class ArchiveError(ValueError):
    """The archive cannot be imported; the message says which file and why."""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> dict[str, dict]:
    return {
        p.relative_to(root).as_posix(): {"sha256": _digest(p), "bytes": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def export(ref: str, out: Path) -> dict:
    """Write the version `ref` names (NAME, NAME:VERSION, NAME@ALIAS) to `out`; returns the
    manifest plus the archive's own sha256."""
    import bentoml

    model = find(ref)
    aliases = [a for a, v in Book().aliases_of(model.tag.name).items() if v == model.tag.version]
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="tiffin-export-") as tmp:
        folder = Path(tmp) / "model"
        bentoml.models.export_model(str(model.tag), str(folder), "folder")
        manifest = {"format": FORMAT, "tag": str(model.tag), "aliases": aliases, "files": _files(folder)}
        (Path(tmp) / MANIFEST).write_text(json.dumps(manifest, indent=1))
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w:gz") as tar:
            tar.add(Path(tmp) / MANIFEST, arcname=MANIFEST)
            tar.add(folder, arcname="model")
    return {**manifest, "archive": str(out), "archive_sha256": _digest(out)}


def verify(root: Path) -> dict:
    """The manifest of an extracted archive at `root`, once every file matches it."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        files = manifest["files"]
        tag = manifest["tag"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ArchiveError(f"not a tiffin model archive: no readable {MANIFEST}") from None
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"archive format {manifest.get('format')!r}; this tiffin reads format {FORMAT}")
    found = _files(root / "model") if (root / "model").is_dir() else {}
    for name, want in files.items():
        got = found.get(name)
        if got is None:
            raise ArchiveError(f"refused {tag}: model/{name} is in the manifest but not in the archive")
        if got["sha256"] != want.get("sha256"):
            raise ArchiveError(
                f"refused {tag}: model/{name} has sha256 {got['sha256'][:16]}..., the manifest says"
                f" {str(want.get('sha256'))[:16]}...; the archive was changed or damaged after export"
            )
    extra = sorted(set(found) - set(files))
    if extra:
        raise ArchiveError(f"refused {tag}: model/{extra[0]} is not in the manifest (added after export)")
    return manifest


def import_(path: Path) -> dict:
    """Check the archive at `path` and add its version to the store; returns the manifest."""
    import bentoml

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="tiffin-import-") as tmp:
        root = Path(tmp)
        try:
            with tarfile.open(path, "r:*") as tar:
                tar.extractall(root, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"cannot read {path} as a model archive: {exc}") from None
        manifest = verify(root)
        try:
            bentoml.models.get(manifest["tag"])
        except bentoml.exceptions.NotFound:
            pass
        else:
            raise ArchiveError(f"{manifest['tag']} is already in the store; delete it first to import it again")
        model = bentoml.models.import_model(str(root / "model"), "folder")
        if str(model.tag) != manifest["tag"]:
            raise ArchiveError(f"the archive's model is {model.tag}, its manifest says {manifest['tag']}")
    return manifest
