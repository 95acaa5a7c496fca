"""PostgreSQL store: an asyncpg pool on ``DATABASE_URL``.

When ``READ_DATABASE_URL`` is set, a second pool on it serves the read-only
queries (:meth:`PostgresStore.get_session`, :meth:`~PostgresStore.list_sessions`,
:meth:`~PostgresStore.list_messages`); writes, migrations and
:meth:`~PostgresStore.open_session` always use the primary. A replica may lag,
so a session just opened can be briefly missing from reads. Problems, course
policies and learners' progress are always read from the primary: an answer key
just changed, or an exam window just opened, must hold at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import orjson

from core.errors import SessionCourseMismatch, SessionForbidden, StoreError
from core.settings import StoreSettings
from store import migrations
from store.store import (
    AskOpening,
    CoursePolicy,
    MessageRecord,
    ProblemProgress,
    ProblemRecord,
    SessionRecord,
    message_from_row,
    policy_from_row,
    problem_from_row,
    progress_from_row,
    session_from_row,
    session_title,
    storable,
)

# Schema changes on big tables outlast the query timeout, and a pod waiting
# for another pod to finish migrating waits this long at most.
MIGRATION_TIMEOUT_S = 600.0
# Key of the advisory lock that lets one pod at a time migrate; any fixed
# 64-bit number other code on the database does not use.
MIGRATION_LOCK_KEY = 0x4C54_6D69_6772_6174

_SESSION_COLUMNS = "id, user_id, course, title, hint_level, created_at, updated_at"
_MESSAGE_COLUMNS = (
    "id, session_id, role, text, mode, stream_id, reason, sources, model, cached, created_at"
)
_PROBLEM_COLUMNS = "course, id, statement, answer, accept, policy, pages, updated_at, updated_by"
_PROGRESS_COLUMNS = "user_id, course, problem, rung, attempts, solved, updated_at"
# ValueError covers a malformed DSN and pool sizes asyncpg refuses.
_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
    ValueError,
)


class PostgresStore:
    """The :class:`store.store.Store` kept in PostgreSQL."""

    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings
        self._pool: Any = None
        self._read_pool: Any = None

    async def open(self) -> None:
        """Create the pools and apply pending migrations on the primary."""
        if self._pool is not None:
            raise StoreError("store is already open")
        if not self._settings.database_url:
            raise StoreError("DATABASE_URL is not set")
        with _errors("connect"):
            pool = await self._create_pool(self._settings.database_url)
        read_pool: Any = None
        try:
            with _errors("migrate"):
                await _migrate(pool)
            if self._settings.read_database_url:
                with _errors("connect to the read database"):
                    read_pool = await self._create_pool(self._settings.read_database_url)
        except BaseException:
            # The error that stopped the opening is the one worth reporting.
            with contextlib.suppress(StoreError):
                await _close_pool(pool, self._settings.query_timeout_s)
            raise
        self._pool, self._read_pool = pool, read_pool

    async def close(self) -> None:
        """Close both pools, terminating connections still busy after the query timeout."""
        pools = [pool for pool in (self._read_pool, self._pool) if pool is not None]
        self._pool = self._read_pool = None
        try:
            for pool in pools:
                await _close_pool(pool, self._settings.query_timeout_s)
        finally:
            # A failure closing one pool must not leak the other's connections;
            # terminating a closed pool does nothing.
            for pool in pools:
                pool.terminate()

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the primary, and the read database if any, answer."""
        async with self._acquire("ping") as conn:
            await conn.execute("SELECT 1")
        if self._read_pool is not None:
            async with self._acquire("ping", read=True) as conn:
                await conn.execute("SELECT 1")

    async def ensure_user(self, user_id: str, role: str) -> None:
        """Create the user on first sight; refresh its role and last-seen time."""
        now = time.time()
        async with self._acquire("ensure_user") as conn:
            await conn.execute(
                "INSERT INTO users (id, role, created_at, last_seen_at) VALUES ($1, $2, $3, $3)"
                " ON CONFLICT (id) DO UPDATE"
                " SET role = excluded.role, last_seen_at = excluded.last_seen_at",
                user_id,
                role,
                now,
            )

    async def open_session(self, session_id: str, user_id: str, course: str) -> SessionRecord:
        """Return the session, creating it for ``user_id`` (who must exist) if it does not."""
        async with self._acquire("open_session") as conn:
            return await _open_session(conn, session_id, user_id, course, time.time())

    async def open_ask(
        self,
        session_id: str,
        user_id: str,
        course: str,
        history_limit: int,
        message: MessageRecord | None = None,
    ) -> AskOpening:
        """Open the session, read its history and policy, store the question: one connection."""
        async with self._acquire("open_ask") as conn:
            session = await _open_session(conn, session_id, user_id, course, time.time())
            history = await _list_messages(conn, session_id, history_limit, None, sources=False)
            policy = await _get_policy(conn, course)
            stored = message is not None and storable(message, policy)
            if message is not None and stored:
                async with conn.transaction():
                    await _add_message(conn, message)
        return AskOpening(session=session, history=history, policy=policy, stored=stored)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, or None."""
        async with self._acquire("get_session", read=True) as conn:
            row = await conn.fetchrow(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = $1", session_id
            )
        return None if row is None else session_from_row(row)

    async def list_sessions(self, user_id: str, limit: int = 50) -> list[SessionRecord]:
        """The user's sessions, most recently updated first."""
        async with self._acquire("list_sessions", read=True) as conn:
            rows = await conn.fetch(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = $1"
                " ORDER BY updated_at DESC, created_at DESC, id DESC LIMIT $2",
                user_id,
                max(limit, 0),
            )
        return [session_from_row(row) for row in rows]

    async def add_message(self, message: MessageRecord) -> None:
        """Store a message, touch its session, and title the session after its first question."""
        async with self._acquire("add_message") as conn, conn.transaction():
            await _add_message(conn, message)

    async def list_messages(
        self, session_id: str, limit: int = 200, before: str | None = None
    ) -> list[MessageRecord]:
        """The session's last ``limit`` messages (before the message ``before``), oldest first."""
        async with self._acquire("list_messages", read=True) as conn:
            return await _list_messages(conn, session_id, limit, before)

    async def set_hint_level(self, session_id: str, level: int) -> None:
        """Remember how far hint mode has gone in this session."""
        async with self._acquire("set_hint_level") as conn:
            status = await conn.execute(
                "UPDATE sessions SET hint_level = $2 WHERE id = $1", session_id, level
            )
        if status == "UPDATE 0":
            raise StoreError(f"session {session_id!r} does not exist")

    async def put_problem(self, record: ProblemRecord) -> bool:
        """Create or replace the problem; True when it is new."""
        async with self._acquire("put_problem") as conn:
            # xmax is 0 in a row version that an INSERT made, not an UPDATE.
            created: bool = await conn.fetchval(
                f"INSERT INTO problems ({_PROBLEM_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (course, id) DO UPDATE SET statement = excluded.statement,"
                " answer = excluded.answer, accept = excluded.accept, policy = excluded.policy,"
                " pages = excluded.pages, updated_at = excluded.updated_at,"
                " updated_by = excluded.updated_by"
                " RETURNING xmax = 0",
                record.course,
                record.id,
                record.statement,
                record.answer,
                record.accept,
                record.policy,
                record.pages,
                record.updated_at,
                record.updated_by,
            )
        return created

    async def get_problem(self, course: str, problem_id: str) -> ProblemRecord | None:
        """The problem, or None."""
        async with self._acquire("get_problem") as conn:
            row = await conn.fetchrow(
                f"SELECT {_PROBLEM_COLUMNS} FROM problems WHERE course = $1 AND id = $2",
                course,
                problem_id,
            )
        return None if row is None else problem_from_row(row, row["accept"], row["pages"])

    async def list_problems(self, course: str) -> list[ProblemRecord]:
        """The course's problems, by id."""
        async with self._acquire("list_problems") as conn:
            rows = await conn.fetch(
                f"SELECT {_PROBLEM_COLUMNS} FROM problems WHERE course = $1 ORDER BY id",
                course,
            )
        return [problem_from_row(row, row["accept"], row["pages"]) for row in rows]

    async def count_problems(self, course: str) -> int:
        """How many problems the course has."""
        async with self._acquire("count_problems") as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM problems WHERE course = $1", course
            )
        return count

    async def delete_problem(self, course: str, problem_id: str) -> bool:
        """Delete the problem and, by its foreign key, every learner's progress on it."""
        async with self._acquire("delete_problem") as conn:
            status = await conn.execute(
                "DELETE FROM problems WHERE course = $1 AND id = $2", course, problem_id
            )
        return bool(status != "DELETE 0")

    async def get_policy(self, course: str) -> CoursePolicy:
        """The course's policy; ``open`` with no window when none was set."""
        async with self._acquire("get_policy") as conn:
            return await _get_policy(conn, course)

    async def put_policy(self, policy: CoursePolicy) -> None:
        """Set the course's policy."""
        async with self._acquire("put_policy") as conn:
            await conn.execute(
                "INSERT INTO course_policies"
                " (course, mode, hint_only_from, hint_only_until, updated_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (course) DO UPDATE"
                " SET mode = excluded.mode, hint_only_from = excluded.hint_only_from,"
                " hint_only_until = excluded.hint_only_until, updated_at = excluded.updated_at",
                policy.course,
                policy.mode,
                policy.hint_only_from,
                policy.hint_only_until,
                time.time(),
            )

    async def get_progress(self, user_id: str, course: str, problem_id: str) -> ProblemProgress:
        """The learner's progress on the problem; zeros when they have not started it."""
        async with self._acquire("get_progress") as conn:
            row = await conn.fetchrow(
                f"SELECT {_PROGRESS_COLUMNS} FROM problem_progress"
                " WHERE user_id = $1 AND course = $2 AND problem = $3",
                user_id,
                course,
                problem_id,
            )
        if row is None:
            return ProblemProgress(user_id=user_id, course=course, problem=problem_id)
        return progress_from_row(row)

    async def advance_rung(self, user_id: str, course: str, problem_id: str, max_rung: int) -> int:
        """Raise the learner's hint rung by one, to at most ``max_rung``, in one statement.

        The upsert locks the row, so concurrent calls from any number of pods
        each see the rung the one before left.
        """
        if max_rung < 0:
            raise ValueError("max_rung must be 0 or more")
        async with self._acquire("advance_rung") as conn:
            rung: int = await conn.fetchval(
                f"INSERT INTO problem_progress ({_PROGRESS_COLUMNS})"
                " VALUES ($1, $2, $3, least(1, $4::integer), 0, false, $5)"
                " ON CONFLICT (user_id, course, problem) DO UPDATE"
                " SET rung = least(problem_progress.rung + 1, $4::integer),"
                " updated_at = excluded.updated_at"
                " RETURNING rung",
                user_id,
                course,
                problem_id,
                max_rung,
                time.time(),
            )
        return rung

    async def record_attempt(
        self, user_id: str, course: str, problem_id: str, correct: bool
    ) -> ProblemProgress:
        """Count an attempt, solving the problem when it is correct, in one statement."""
        async with self._acquire("record_attempt") as conn:
            row = await conn.fetchrow(
                f"INSERT INTO problem_progress ({_PROGRESS_COLUMNS})"
                " VALUES ($1, $2, $3, 0, 1, $4, $5)"
                " ON CONFLICT (user_id, course, problem) DO UPDATE"
                " SET attempts = problem_progress.attempts + 1,"
                " solved = problem_progress.solved OR excluded.solved,"
                " updated_at = excluded.updated_at"
                f" RETURNING {_PROGRESS_COLUMNS}",
                user_id,
                course,
                problem_id,
                correct,
                time.time(),
            )
        return progress_from_row(row)

    async def _create_pool(self, dsn: str) -> Any:
        return await asyncpg.create_pool(
            dsn,
            min_size=self._settings.pool_min,
            max_size=self._settings.pool_max,
            command_timeout=self._settings.query_timeout_s,
            # Passed on to connect(): how long establishing a connection may take.
            timeout=self._settings.query_timeout_s,
            init=_init_connection,
        )

    @contextlib.asynccontextmanager
    async def _acquire(self, operation: str, *, read: bool = False) -> AsyncIterator[Any]:
        pool = self._pool
        if pool is None:
            raise StoreError("store is not open")
        if read and self._read_pool is not None:
            pool = self._read_pool
        try:
            async with pool.acquire(timeout=self._settings.query_timeout_s) as conn:
                yield conn
        except _ERRORS as exc:
            raise StoreError(f"{operation} failed: {exc}") from exc


async def _init_connection(conn: Any) -> None:
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_json_text,
        decoder=orjson.loads,
        format="text",
    )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _migrate(pool: Any) -> None:
    async with pool.acquire(timeout=MIGRATION_TIMEOUT_S) as conn:
        # Under the lock: two pods racing on CREATE TABLE IF NOT EXISTS can
        # still collide in the catalog.
        async with conn.transaction():
            await _lock_migrations(conn)
            await conn.execute(migrations.SCHEMA_MIGRATIONS_SQL["postgres"])
        rows = await conn.fetch("SELECT version FROM schema_migrations")
        applied = {int(row["version"]) for row in rows}
        for migration in migrations.pending(migrations.load("postgres"), applied):
            async with conn.transaction():
                await _lock_migrations(conn)
                done = await conn.fetchval(
                    "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
                )
                if done:
                    continue
                await conn.execute(migration.sql, timeout=MIGRATION_TIMEOUT_S)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    migration.version,
                    time.time(),
                )


async def _lock_migrations(conn: Any) -> None:
    # Transaction-scoped, so it is released by the commit or rollback.
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY, timeout=MIGRATION_TIMEOUT_S
    )


async def _close_pool(pool: Any, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        # A connection still busy would hold shutdown up forever.
        pool.terminate()
    except _ERRORS as exc:
        pool.terminate()
        raise StoreError(f"close failed: {exc}") from exc


@contextlib.contextmanager
def _errors(operation: str) -> Iterator[None]:
    try:
        yield
    except _ERRORS as exc:
        raise StoreError(f"{operation} failed: {exc}") from exc


async def _open_session(
    conn: Any, session_id: str, user_id: str, course: str, now: float
) -> SessionRecord:
    """The session, created for ``user_id`` if it does not exist; raises if it is not theirs."""
    row = await conn.fetchrow(
        "INSERT INTO sessions (id, user_id, course, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING"
        f" RETURNING {_SESSION_COLUMNS}",
        session_id,
        user_id,
        course,
        now,
    )
    if row is None:
        # Lost the race or the session already existed. The conflict
        # waited for the other insert to commit, so this sees its row.
        row = await conn.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = $1", session_id
        )
    if row is None:
        raise StoreError(f"session {session_id!r} vanished while being opened")
    session = session_from_row(row)
    if session.user_id != user_id:
        raise SessionForbidden(f"session {session_id!r} belongs to another user")
    if session.course != course:
        raise SessionCourseMismatch(f"session {session_id!r} belongs to another course")
    return session


async def _get_policy(conn: Any, course: str) -> CoursePolicy:
    """The course's policy; ``open`` with no window when none was set."""
    row = await conn.fetchrow(
        "SELECT course, mode, hint_only_from, hint_only_until FROM course_policies"
        " WHERE course = $1",
        course,
    )
    return CoursePolicy(course=course) if row is None else policy_from_row(row)


async def _add_message(conn: Any, message: MessageRecord) -> None:
    """Store a message (inside the caller's transaction), touch and title its session."""
    title = session_title(message.text) if message.role == "learner" else ""
    # Updating the session first locks its row, so concurrent messages
    # of one session take their seq in commit order.
    status = await conn.execute(
        "UPDATE sessions SET updated_at = greatest(updated_at, $2),"
        " title = CASE WHEN title = '' THEN $3 ELSE title END WHERE id = $1",
        message.session_id,
        message.created_at,
        title,
    )
    if status == "UPDATE 0":
        raise StoreError(f"session {message.session_id!r} does not exist")
    await conn.execute(
        f"INSERT INTO messages ({_MESSAGE_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        message.id,
        message.session_id,
        message.role,
        message.text,
        message.mode,
        message.stream_id,
        message.reason,
        message.sources,
        message.model,
        message.cached,
        message.created_at,
    )


async def _list_messages(
    conn: Any, session_id: str, limit: int, before: str | None, *, sources: bool = True
) -> list[MessageRecord]:
    """The session's last ``limit`` messages (before the message ``before``), oldest first.

    ``sources=False`` leaves each message's sources empty.
    """
    # $3 NULL: no cursor. An id that is not the session's gives a NULL bound: no rows.
    rows = await conn.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM"
        f" (SELECT {_MESSAGE_COLUMNS}, seq FROM messages WHERE session_id = $1"
        "  AND ($3::text IS NULL OR seq <"
        "   (SELECT seq FROM messages WHERE id = $3 AND session_id = $1))"
        "  ORDER BY seq DESC LIMIT $2) AS recent"
        " ORDER BY seq",
        session_id,
        max(limit, 0),
        before,
    )
    return [message_from_row(row, row["sources"] if sources else []) for row in rows]
