"""Fixtures of the store tests: a factory of stores on a fresh database of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.store import Store
from tests.store.factory import StoreFactory
from tests.support.postgres import temporary_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of stores on a fresh database of each kind."""
    if request.param == "sqlite":
        # A directory that does not exist yet: opening must create it.
        factory = StoreFactory("sqlite", str(tmp_path / "data" / "livetutor.sqlite3"))
        try:
            yield factory
        finally:
            await factory.close_all()
        return
    async with temporary_database() as url:
        factory = StoreFactory("postgres", url)
        try:
            yield factory
        finally:
            await factory.close_all()


@pytest.fixture
async def store(stores: StoreFactory) -> Store:
    """An open store on a fresh database."""
    return await stores.open()


@pytest.fixture
async def postgres_stores() -> AsyncIterator[StoreFactory]:
    """A factory of PostgreSQL stores on a fresh database."""
    async with temporary_database() as url:
        factory = StoreFactory("postgres", url)
        try:
            yield factory
        finally:
            await factory.close_all()
