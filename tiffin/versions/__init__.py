"""Model versions beyond what BentoML's store keeps: aliases (book.py), the operations on them
with their promotion gate (manage.py), offline archives (archive.py) and the serving side that
follows an alias without a restart (follow.py).

Which version a service serves, per family (`Family.tag`):
  1. its setting (e.g. TIFFIN_IMAGE_MODEL) when set: `NAME:VERSION` is fixed, `NAME@ALIAS` follows ALIAS;
  2. else `NAME@production` (TIFFIN_MODEL_ALIAS) when the alias book has it, followed;
  3. else the newest version in the store (`NAME:latest`), until an alias appears.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiffin.config import settings
from tiffin.versions.book import AliasError, Book

if TYPE_CHECKING:
    from tiffin.families import Family


def followed(family: Family) -> tuple[str, str] | None:
    """(model, alias) a service of `family` keeps following; None when its setting fixes a version."""
    wanted = family.wanted
    if wanted and "@" not in wanted:
        return None
    if wanted:
        name, _, alias = wanted.partition("@")
        return name or family.name, alias
    return family.name, settings().model_alias


def resolve(family: Family) -> str:
    """The store tag to load now, by the rules above."""
    follows = followed(family)
    if follows is None:
        return family.wanted
    name, alias = follows
    version = Book().resolve(name, alias)
    if version is None and family.wanted:  # asked for by name: a missing alias is a mistake to report
        raise AliasError(f"{family.env}={family.wanted}: the alias book {Book().path} has no {name}@{alias}")
    return f"{name}:{version}" if version else f"{name}:latest"


__all__ = ["AliasError", "Book", "followed", "resolve"]
