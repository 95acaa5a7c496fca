"""Stores on throwaway databases for the store tests, and the records they write."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import aiosqlite
import asyncpg

from core.settings import Settings, StoreSettings
from server.backends import create_store
from store.store import MessageRecord, MessageRole, SessionRecord, Store

Kind = Literal["sqlite", "postgres"]


@dataclass
class StoreFactory:
    """Makes stores on one database and closes every one it made."""

    kind: Kind
    # A file path for SQLite, a DSN for PostgreSQL.
    location: str
    made: list[Store] = field(default_factory=list)

    def make(self, **overrides: Any) -> Store:
        """A store on this database, not yet open."""
        url = self.location if self.kind == "postgres" else f"sqlite:///{self.location}"
        values: dict[str, Any] = {"database_url": url, "pool_min": 1, "pool_max": 4}
        store = create_store(Settings(store=StoreSettings(**(values | overrides))))
        self.made.append(store)
        return store

    async def open(self, **overrides: Any) -> Store:
        """An open store on this database."""
        store = self.make(**overrides)
        await store.open()
        return store

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` read straight from the database, around the store."""
        if self.kind == "sqlite":
            async with aiosqlite.connect(self.location) as sqlite:
                return [tuple(row) for row in await sqlite.execute_fetchall(sql)]
        postgres = await asyncpg.connect(self.location)
        try:
            return [tuple(row) for row in await postgres.fetch(sql)]
        finally:
            await postgres.close()

    async def applied_versions(self) -> list[int]:
        """Versions recorded in ``schema_migrations``."""
        return [row[0] for row in await self.fetch("SELECT version FROM schema_migrations")]

    async def close_all(self) -> None:
        """Close every store made, open or not."""
        for store in self.made:
            await store.close()


async def new_session(
    store: Store, session_id: str = "s1", user_id: str = "u1", course: str = "calculus"
) -> SessionRecord:
    """Create the user and open a session for it."""
    await store.ensure_user(user_id, "learner")
    return await store.open_session(session_id, user_id, course)


def make_message(
    number: int,
    session_id: str = "s1",
    role: MessageRole = "learner",
    created_at: float | None = None,
    **fields: Any,
) -> MessageRecord:
    """A message with a predictable id, text unless given, and time unless given."""
    fields.setdefault("text", f"message {number}")
    return MessageRecord(
        id=f"{session_id}-m{number}",
        session_id=session_id,
        role=role,
        created_at=time.time() + number if created_at is None else created_at,
        **fields,
    )
