"""Versioned SQL migrations: each dialect's files, in the order they apply.

A migration is ``store/migrations/<dialect>/<version>_<name>.sql``, shipped
as package data. Both stores apply the pending ones lowest version first, each
in its own transaction together with its row in ``schema_migrations``. An
applied file is never edited: a schema change is a new file with the next
version, in both dialects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from core.errors import StoreError

Dialect = Literal["sqlite", "postgres"]

# Created outside the numbered files because it must exist before the store
# can ask which versions are applied.
SCHEMA_MIGRATIONS_SQL: dict[Dialect, str] = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    ),
    "postgres": (
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version integer PRIMARY KEY, applied_at double precision NOT NULL)"
    ),
}

_FILE_NAME = re.compile(r"(\d+)_(\w+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL script."""

    version: int
    name: str
    sql: str


def load(dialect: Dialect) -> list[Migration]:
    """The dialect's migrations, lowest version first.

    Raises :class:`StoreError` if a file is misnamed, two share a version, or
    there are none (the package data was not installed).
    """
    folder = resources.files("store").joinpath("migrations", dialect)
    found: dict[int, Migration] = {}
    for entry in folder.iterdir() if folder.is_dir() else ():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise StoreError(f"migration {dialect}/{entry.name} is not named <version>_<name>.sql")
        version = int(match[1])
        if version in found:
            raise StoreError(f"two {dialect} migrations have version {version}")
        found[version] = Migration(version, match[2], entry.read_text(encoding="utf-8"))
    if not found:
        raise StoreError(f"no {dialect} migrations found in the server package")
    return [found[version] for version in sorted(found)]


def pending(migrations: Iterable[Migration], applied: Iterable[int]) -> list[Migration]:
    """The migrations whose version is not in ``applied``, in the given order."""
    done = set(applied)
    return [migration for migration in migrations if migration.version not in done]
