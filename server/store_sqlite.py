"""SQLite store: the embedded default, one file in the data directory.

One aiosqlite connection serves the process. Its worker thread runs
statements in the order they were queued, and an :class:`asyncio.Lock` keeps
other coroutines' statements out of a transaction in progress. The connection
is in autocommit mode; operations of several statements open
``BEGIN IMMEDIATE`` themselves so they hold the write lock from the start
instead of failing to upgrade a read lock when another process writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from server import migrations
from server.errors import SessionCourseMismatch, SessionForbidden, StoreError
from server.settings import StoreSettings
from server.store import MessageRecord, SessionRecord

TITLE_CHARS = 80

_SESSION_COLUMNS = "id, user_id, course, title, hint_level, created_at, updated_at"
_MESSAGE_COLUMNS = (
    "id, session_id, role, text, mode, stream_id, reason, sources, model, cached, created_at"
)
# aiosqlite reports a closed connection as ValueError; orjson's decode error is one too.
_ERRORS = (sqlite3.Error, OSError, ValueError)


class SQLiteStore:
    """The :class:`server.store.Store` kept in one SQLite file."""

    def __init__(self, path: str, settings: StoreSettings) -> None:
        self._path = path
        self._settings = settings
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the file, creating it and its directory, and apply pending migrations."""
        if self._conn is not None:
            raise StoreError("store is already open")
        with _errors("open"):
            if self._path != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            # timeout is SQLite's busy timeout: how long to wait for another
            # process's write lock before failing.
            conn = await aiosqlite.connect(
                self._path, timeout=self._settings.query_timeout_s, isolation_level=None
            )
        try:
            with _errors("open"):
                conn.row_factory = sqlite3.Row
                await _enable_wal(conn, self._settings.query_timeout_s)
                # With WAL, NORMAL cannot corrupt the file; a power cut may
                # lose the last commits, which a tutoring history can afford.
                await conn.execute("PRAGMA synchronous = NORMAL")
                await conn.execute("PRAGMA foreign_keys = ON")
                await _migrate(conn)
        except BaseException:
            with contextlib.suppress(*_ERRORS):
                await conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Close the connection once the operation in progress, if any, is done."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        async with self._lock:
            with _errors("close"):
                await conn.close()

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers."""
        async with self._locked("ping") as conn:
            await conn.execute("SELECT 1")

    async def ensure_user(self, user_id: str, role: str) -> None:
        """Create the user on first sight; refresh its role and last-seen time."""
        now = time.time()
        async with self._locked("ensure_user") as conn:
            await conn.execute(
                "INSERT INTO users (id, role, created_at, last_seen_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE"
                " SET role = excluded.role, last_seen_at = excluded.last_seen_at",
                (user_id, role, now, now),
            )

    async def open_session(self, session_id: str, user_id: str, course: str) -> SessionRecord:
        """Return the session, creating it for ``user_id`` (who must exist) if it does not."""
        now = time.time()
        async with self._transaction("open_session") as conn:
            await conn.execute(
                "INSERT INTO sessions (id, user_id, course, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (session_id, user_id, course, now, now),
            )
            row = await _fetchone(
                conn, f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            )
        if row is None:
            raise StoreError(f"session {session_id!r} vanished while being opened")
        session = _session(row)
        if session.user_id != user_id:
            raise SessionForbidden(f"session {session_id!r} belongs to another user")
        if session.course != course:
            raise SessionCourseMismatch(f"session {session_id!r} belongs to another course")
        return session

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, or None."""
        async with self._locked("get_session") as conn:
            row = await _fetchone(
                conn, f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            )
        return None if row is None else _session(row)

    async def list_sessions(self, user_id: str, limit: int = 50) -> list[SessionRecord]:
        """The user's sessions, most recently updated first."""
        async with self._locked("list_sessions") as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = ?"
                " ORDER BY updated_at DESC, created_at DESC, id DESC LIMIT ?",
                (user_id, max(limit, 0)),
            )
        return [_session(row) for row in rows]

    async def add_message(self, message: MessageRecord) -> None:
        """Store a message, touch its session, and title the session after its first question."""
        title = _title(message.text) if message.role == "learner" else ""
        async with self._transaction("add_message") as conn:
            cursor = await conn.execute(
                "UPDATE sessions SET updated_at = max(updated_at, ?),"
                " title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                (message.created_at, title, message.session_id),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"session {message.session_id!r} does not exist")
            await conn.execute(
                f"INSERT INTO messages ({_MESSAGE_COLUMNS}, seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " (SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE session_id = ?))",
                (
                    message.id,
                    message.session_id,
                    message.role,
                    message.text,
                    message.mode,
                    message.stream_id,
                    message.reason,
                    orjson.dumps(message.sources).decode(),
                    message.model,
                    int(message.cached),
                    message.created_at,
                    message.session_id,
                ),
            )

    async def list_messages(self, session_id: str, limit: int = 200) -> list[MessageRecord]:
        """The session's last ``limit`` messages, oldest first."""
        async with self._locked("list_messages") as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_MESSAGE_COLUMNS} FROM"
                f" (SELECT {_MESSAGE_COLUMNS}, seq FROM messages WHERE session_id = ?"
                "  ORDER BY seq DESC LIMIT ?)"
                " ORDER BY seq",
                (session_id, max(limit, 0)),
            )
            return [_message(row) for row in rows]

    async def set_hint_level(self, session_id: str, level: int) -> None:
        """Remember how far hint mode has gone in this session."""
        async with self._locked("set_hint_level") as conn:
            cursor = await conn.execute(
                "UPDATE sessions SET hint_level = ? WHERE id = ?", (level, session_id)
            )
            if cursor.rowcount == 0:
                raise StoreError(f"session {session_id!r} does not exist")

    @contextlib.asynccontextmanager
    async def _locked(self, operation: str) -> AsyncIterator[aiosqlite.Connection]:
        # Every operation takes the lock: a lone statement sent while another
        # coroutine is inside BEGIN ... COMMIT would join that transaction.
        async with self._lock:
            if self._conn is None:
                raise StoreError("store is not open")
            with _errors(operation):
                yield self._conn

    @contextlib.asynccontextmanager
    async def _transaction(self, operation: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._locked(operation) as conn:
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                await conn.execute("COMMIT")
            except BaseException:
                # Statements already queued still run, cancelled or not; the
                # ROLLBACK queues behind them and leaves the connection clean.
                await _rollback(conn)
                raise


async def _migrate(conn: aiosqlite.Connection) -> None:
    await conn.execute(migrations.SCHEMA_MIGRATIONS_SQL["sqlite"])
    for migration in migrations.pending(migrations.load("sqlite"), await _applied(conn)):
        # executescript commits any open transaction first, so the script
        # carries its own. The version row goes in first: a process that
        # lost the race fails on its primary key before touching the schema.
        script = (
            "BEGIN IMMEDIATE;\n"
            "INSERT INTO schema_migrations (version, applied_at)"
            f" VALUES ({int(migration.version)}, {float(time.time())!r});\n"
            f"{migration.sql}\n;\nCOMMIT;"
        )
        try:
            await conn.executescript(script)
        except sqlite3.Error:
            await _rollback(conn)
            if migration.version in await _applied(conn):
                continue
            raise


async def _enable_wal(conn: aiosqlite.Connection, timeout_s: float) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite reports
    # "locked" at once instead of waiting the busy timeout when another
    # process is opening it at the same moment.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.01)


async def _applied(conn: aiosqlite.Connection) -> set[int]:
    rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
    return {int(row[0]) for row in rows}


async def _rollback(conn: aiosqlite.Connection) -> None:
    # Fails harmlessly when SQLite already ended the transaction itself.
    with contextlib.suppress(*_ERRORS):
        await conn.execute("ROLLBACK")


async def _fetchone(
    conn: aiosqlite.Connection, sql: str, parameters: tuple[Any, ...]
) -> sqlite3.Row | None:
    async with conn.execute(sql, parameters) as cursor:
        row: sqlite3.Row | None = await cursor.fetchone()
        return row


@contextlib.contextmanager
def _errors(operation: str) -> Iterator[None]:
    try:
        yield
    except _ERRORS as exc:
        raise StoreError(f"{operation} failed: {exc}") from exc


def _title(text: str) -> str:
    return " ".join(text.split())[:TITLE_CHARS]


def _session(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        user_id=row["user_id"],
        course=row["course"],
        title=row["title"],
        hint_level=row["hint_level"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _message(row: sqlite3.Row) -> MessageRecord:
    return MessageRecord(
        id=row["id"],
        session_id=row["session_id"],
        role=row["role"],
        text=row["text"],
        mode=row["mode"],
        stream_id=row["stream_id"],
        reason=row["reason"],
        sources=orjson.loads(row["sources"]),
        model=row["model"],
        cached=bool(row["cached"]),
        created_at=row["created_at"],
    )
