"""What `tiffin models ...` and the admin API do: list and show stored versions with their
aliases, and move aliases (promote, rollback, pin) through the promotion gate.

The gate: a candidate whose stored held-out metric (its family's `metric`, e.g. test_accuracy)
trails the current holder's by more than the family's `metric_tolerance` is refused, naming
both figures, unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiffin.versions.book import DEFAULT_ALIAS, AliasError, Book, check_alias


class NotInStore(LookupError):
    """No stored version matches the reference."""


@dataclass(frozen=True)
class Ref:
    """`NAME`, `NAME:VERSION` (or a unique prefix of it) or `NAME@ALIAS`."""

    name: str
    version: str | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> Ref:
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(name, alias=check_alias(alias))
        name, _, version = text.partition(":")
        return cls(name, version=version or None)


def _store_versions(name: str) -> list[Any]:
    """Stored models named `name`, newest first."""
    import bentoml

    found = [m for m in bentoml.models.list() if m.tag.name == name]
    return sorted(found, key=lambda m: m.info.creation_time, reverse=True)


def find(ref: Ref | str, book: Book | None = None) -> Any:
    """The stored model a reference names (a bentoml Model); NotInStore when none."""
    ref = Ref.parse(ref) if isinstance(ref, str) else ref
    stored = _store_versions(ref.name)
    if not stored:
        raise NotInStore(f"no model named {ref.name!r} in the store")
    version = ref.version
    if ref.alias:
        version = (book or Book()).resolve(ref.name, ref.alias)
        if version is None:
            raise NotInStore(f"{ref.name} has no alias {ref.alias!r}")
    if version is None or version == "latest":
        return stored[0]
    matches = [m for m in stored if m.tag.version == version] or [m for m in stored if m.tag.version.startswith(version)]
    if len(matches) != 1:
        known = ", ".join(m.tag.version for m in stored[:8])
        what = "matches no" if not matches else "matches more than one"
        raise NotInStore(f"{version!r} {what} version of {ref.name} (newest: {known})")
    return matches[0]


def _metric(model: Any, name: str) -> float | None:
    value = dict(model.info.metadata).get("metrics", {}).get(name)
    return None if value is None else float(value)


def _family(name: str):
    from tiffin import families

    return families.BY_NAME.get(name)


def describe(model: Any, aliases: dict[str, str]) -> dict:
    meta = dict(model.info.metadata)
    return {
        "tag": str(model.tag),
        "version": model.tag.version,
        "created": model.info.creation_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aliases": sorted(a for a, v in aliases.items() if v == model.tag.version),
        "metrics": meta.get("metrics", {}),
        "dataset_sha256": meta.get("dataset_sha256"),
        "code_version": meta.get("code_version"),
        "labels": dict(model.info.labels),
    }


def list_models(book: Book | None = None) -> list[dict]:
    """One row per model name: its versions (newest first) and aliases."""
    import bentoml

    book = book or Book()
    data = book.read()
    names = sorted({m.tag.name for m in bentoml.models.list()})
    rows = []
    for name in names:
        aliases = book.aliases_of(name, data)
        rows.append({"name": name, "aliases": aliases, "versions": [describe(m, aliases) for m in _store_versions(name)]})
    return rows


def show(ref: str, book: Book | None = None) -> dict:
    book = book or Book()
    model = find(ref, book)
    name = model.tag.name
    data = book.read()
    aliases = book.aliases_of(name, data)
    family = _family(name)
    held = {a: book.holder(name, a, data) for a in aliases}
    return {
        **describe(model, aliases),
        "name": name,
        "alias_holders": {a: {"version": h.version, "previous": list(h.previous), "pin": h.pin} for a, h in held.items()},
        "gate": {"metric": family.metric, "tolerance": family.metric_tolerance} if family else None,
        "traffic": book.traffic(name, data),
        "shadow": book.shadow(name, data),
        "canary": data.get("canary", {}).get(name),
        "history": book.history(name)[-10:],
        "card": _card(model),
    }


def _card(model: Any) -> str | None:
    """The version's model card (written by its training run), when it has one."""
    from tiffin import store

    path = Path(model.path) / store.CARD
    return path.read_text() if path.exists() else None


def gate(name: str, candidate: Any, current: Any | None) -> str | None:
    """Why `candidate` may not replace `current`, or None when it may."""
    family = _family(name)
    if family is None or current is None:
        return None
    new, old = _metric(candidate, family.metric), _metric(current, family.metric)
    if new is None or old is None:
        return None  # nothing stored to compare (e.g. a model made elsewhere)
    if new < old - family.metric_tolerance:
        return (
            f"{candidate.tag} has {family.metric}={new:.4f}, {old - new:.4f} below {current.tag}'s {old:.4f}"
            f" (the gate allows {family.metric_tolerance:g}); pass force to promote it anyway"
        )
    return None


class GateRefused(AliasError):
    """The promotion gate said no."""


def promote(
    name: str, version: str, alias: str = DEFAULT_ALIAS, *, force: bool = False, why: str = "", by: str | None = None
) -> dict:
    """Point `name@alias` at a stored version, through the gate unless `force`."""
    book = Book()
    candidate = find(Ref(name, version=version), book)
    current_version = book.resolve(name, alias)
    current = find(Ref(name, version=current_version), book) if current_version else None
    refusal = None if force else gate(name, candidate, current)
    if refusal:
        raise GateRefused(refusal)
    note = why + (" (forced past the gate)" if force and gate(name, candidate, current) else "")
    return book.move(name, alias, candidate.tag.version, action="promote", why=note, by=by)


def rollback(name: str, alias: str = DEFAULT_ALIAS, *, why: str = "", by: str | None = None) -> dict:
    return Book().rollback(name, alias, why=why, by=by)


def pin(name: str, version: str | None, alias: str = DEFAULT_ALIAS, *, why: str = "", by: str | None = None) -> dict:
    if version is not None:
        version = find(Ref(name, version=version)).tag.version
    return Book().pin(name, alias, version, why=why, by=by)


def unpin(name: str, alias: str = DEFAULT_ALIAS, *, why: str = "", by: str | None = None) -> dict:
    return Book().unpin(name, alias, why=why, by=by)


def split(name: str, weights: dict[str, int], sticky: str | None = None, *, why: str = "", by: str | None = None) -> dict:
    """Share `name`'s traffic between stored versions (unique prefixes allowed) by weight."""
    from tiffin.versions import traffic

    book = Book()
    full = {find(Ref(name, version=v), book).tag.version: w for v, w in traffic.check_weights(weights).items()}
    return book.split(name, full, traffic.check_sticky(sticky), why=why, by=by)


def unsplit(name: str, *, why: str = "", by: str | None = None) -> dict:
    return Book().unsplit(name, why=why, by=by)


def shadow(name: str, version: str, percent: float = 100.0, *, why: str = "", by: str | None = None) -> dict:
    """Offer `percent` of `name`'s requests to a stored version on the side, and compare."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent is {percent!r}: use a number above 0, up to 100")
    book = Book()
    return book.set_shadow(name, find(Ref(name, version=version), book).tag.version, float(percent), why=why, by=by)


def unshadow(name: str, *, why: str = "", by: str | None = None) -> dict:
    return Book().clear_shadow(name, why=why, by=by)


def history(name: str | None = None) -> list[dict]:
    return Book().history(name)
