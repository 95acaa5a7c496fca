"""SQLite store: the embedded default, one file in the data directory.

One :mod:`sqlite3` connection serves the process, and every public operation
is one plain function run with it in one trip: all its statements, and its
transaction when it has one. Operations run one at a time in the order they
were sent, so they are serialised without a lock and a lone statement can
never land inside another operation's transaction.

An operation runs on the event loop's own thread when nothing waits for the
store: each takes a fraction of a millisecond, while handing it to a thread
costs a GIL hand-over for every statement and row, which a busy loop makes
wait (profiled under load: the hand-overs, not SQLite, set the pace). It
runs without waiting for locks there; when another process holds the write
lock, the operation goes to the store's own thread instead (a single-worker
executor), which waits up to the busy timeout, and every operation sent
after it queues behind it there until the queue is empty again.

Writes share transactions (group commits), each write in a savepoint of its
own, so one that fails is undone alone. On the loop's thread, the writes of
one round of the event loop share one transaction: the first begins it and
schedules its COMMIT for the end of the round, and a write returns as soon
as its statements have run. Under load a COMMIT costs more than the
statements it ends (it appends every page they changed to the log), and a
round pays it once for all its writes. The COMMIT runs ahead of every
callback that a caller scheduled after its write returned, so a frame sent
because a write was stored goes out after that write is committed, and
another process sees the writes a round later at most. If the COMMIT fails
(a full disk, an I/O error), the round's writes are lost: the store logs
``store.round_lost`` with their number, and commits each write alone until
one commits again, so that its callers see the failures. Writes that queue
up together on the store's thread share one transaction too.

A COMMIT on the loop's thread only appends to the write-ahead log: the
checkpoints that copy the log into the database file and fsync both run on
the store's thread every ``CHECKPOINT_EVERY_S``, with a connection of their
own (SQLite's automatic checkpoints, which would block the loop on fsync,
are off).

The connection is in autocommit mode; transactions of writes open with
``BEGIN IMMEDIATE`` so they hold the write lock from the start instead of
failing to upgrade a read lock when another process writes.

Cancelling a caller does not interrupt its operation: one that has started
runs to its COMMIT or ROLLBACK, and one still queued is dropped before it
begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import structlog

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

_SESSION_COLUMNS = "id, user_id, course, title, hint_level, created_at, updated_at"
_MESSAGE_COLUMNS = (
    "id, session_id, role, text, mode, stream_id, reason, sources, model, cached, created_at"
)
_PROBLEM_COLUMNS = "course, id, statement, answer, accept, policy, pages, updated_at, updated_by"
_PROGRESS_COLUMNS = "user_id, course, problem, rung, attempts, solved, updated_at"
# orjson reports a sources column it cannot decode as ValueError.
_ERRORS = (sqlite3.Error, OSError, ValueError)
# How long to wait between attempts to switch a file that is locked to WAL.
_WAL_RETRY_S = 0.01
# How often the log is checkpointed into the database file, and what it keeps on disk after.
CHECKPOINT_EVERY_S = 1.0
_WAL_KEEP_BYTES = 64 * 2**20

_T = TypeVar("_T")

log = structlog.get_logger("livetutor.store")


class SQLiteStore:
    """The :class:`store.store.Store` kept in one SQLite file."""

    def __init__(self, path: str, settings: StoreSettings) -> None:
        self._path = path
        self._settings = settings
        self._db: _Database | None = None
        self._opening = False
        self._checkpointer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the file, creating it and its directory, and apply pending migrations."""
        if self._db is not None or self._opening:
            raise StoreError("store is already open")
        db = _Database(ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite"))
        self._opening = True
        try:
            await asyncio.get_running_loop().run_in_executor(
                db.executor, _connect, db, self._path, self._settings.query_timeout_s
            )
        except BaseException:
            # A failed connect has closed its connection already. If the
            # caller was cancelled, the connect may still be running: the
            # close queued behind it undoes it.
            db.executor.submit(_disconnect, db)
            db.executor.shutdown(wait=False)
            raise
        finally:
            self._opening = False
        self._db = db
        if db.checkpoints is not None:
            self._checkpointer = asyncio.create_task(
                self._checkpoint_every(db), name="sqlite-checkpoints"
            )

    async def close(self) -> None:
        """Close the connection once the operations already sent have finished."""
        db, self._db = self._db, None
        if db is None:
            return
        # The writes of this round were sent before the close: they are committed first.
        self._commit_round(db)
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checkpointer
        # Submitted directly and shielded: the connection is closed even if
        # the caller is cancelled while it waits.
        done = db.executor.submit(_disconnect, db)
        db.executor.shutdown(wait=False)
        with _errors("close"):
            await asyncio.shield(asyncio.wrap_future(done))

    async def _checkpoint_every(self, db: _Database) -> None:
        """Checkpoint the log on the store's thread every CHECKPOINT_EVERY_S until closed."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            try:
                await loop.run_in_executor(db.executor, _checkpoint, db)
            except StoreError as exc:
                # The next round tries again; the log only grows meanwhile.
                log.warning("store.checkpoint_failed", error=str(exc))

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers."""

        def ping(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT 1")

        await self._run("ping", ping)

    async def ensure_user(self, user_id: str, role: str) -> None:
        """Create the user on first sight; refresh its role and last-seen time."""
        now = time.time()

        def ensure_user(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO users (id, role, created_at, last_seen_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE"
                " SET role = excluded.role, last_seen_at = excluded.last_seen_at",
                (user_id, role, now, now),
            )

        await self._run("ensure_user", ensure_user, write=True)

    async def open_session(self, session_id: str, user_id: str, course: str) -> SessionRecord:
        """Return the session, creating it for ``user_id`` (who must exist) if it does not."""
        now = time.time()

        def open_session(conn: sqlite3.Connection) -> SessionRecord:
            return _open_session(conn, session_id, user_id, course, now)

        return await self._run("open_session", open_session, write=True)

    async def open_ask(
        self,
        session_id: str,
        user_id: str,
        course: str,
        history_limit: int,
        message: MessageRecord | None = None,
    ) -> AskOpening:
        """Open the session, read its history and policy, store the question: one transaction."""
        now = time.time()

        def open_ask(conn: sqlite3.Connection) -> AskOpening:
            session = _open_session(conn, session_id, user_id, course, now)
            history = _list_messages(conn, session_id, history_limit, None, sources=False)
            policy = _get_policy(conn, course)
            stored = message is not None and storable(message, policy)
            if message is not None and stored:
                _add_message(conn, message)
            return AskOpening(session=session, history=history, policy=policy, stored=stored)

        return await self._run("open_ask", open_ask, write=True)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, or None."""
        return await self._run("get_session", lambda conn: _fetch_session(conn, session_id))

    async def list_sessions(self, user_id: str, limit: int = 50) -> list[SessionRecord]:
        """The user's sessions, most recently updated first."""

        def list_sessions(conn: sqlite3.Connection) -> list[SessionRecord]:
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = ?"
                " ORDER BY updated_at DESC, created_at DESC, id DESC LIMIT ?",
                (user_id, max(limit, 0)),
            ).fetchall()
            return [session_from_row(row) for row in rows]

        return await self._run("list_sessions", list_sessions)

    async def add_message(self, message: MessageRecord) -> None:
        """Store a message, touch its session, and title the session after its first question."""

        def add_message(conn: sqlite3.Connection) -> None:
            _add_message(conn, message)

        await self._run("add_message", add_message, write=True)

    async def list_messages(
        self, session_id: str, limit: int = 200, before: str | None = None
    ) -> list[MessageRecord]:
        """The session's last ``limit`` messages (before the message ``before``), oldest first."""
        return await self._run(
            "list_messages", lambda conn: _list_messages(conn, session_id, limit, before)
        )

    async def set_hint_level(self, session_id: str, level: int) -> None:
        """Remember how far hint mode has gone in this session."""

        def set_hint_level(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE sessions SET hint_level = ? WHERE id = ?", (level, session_id)
            )
            if cursor.rowcount == 0:
                raise StoreError(f"session {session_id!r} does not exist")

        await self._run("set_hint_level", set_hint_level, write=True)

    async def put_problem(self, record: ProblemRecord) -> bool:
        """Create or replace the problem; True when it is new."""

        def put_problem(conn: sqlite3.Connection) -> bool:
            existed = conn.execute(
                "SELECT 1 FROM problems WHERE course = ? AND id = ?", (record.course, record.id)
            ).fetchone()
            conn.execute(
                f"INSERT INTO problems ({_PROBLEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (course, id) DO UPDATE SET statement = excluded.statement,"
                " answer = excluded.answer, accept = excluded.accept, policy = excluded.policy,"
                " pages = excluded.pages, updated_at = excluded.updated_at,"
                " updated_by = excluded.updated_by",
                (
                    record.course,
                    record.id,
                    record.statement,
                    record.answer,
                    orjson.dumps(record.accept).decode(),
                    record.policy,
                    orjson.dumps(record.pages).decode(),
                    record.updated_at,
                    record.updated_by,
                ),
            )
            return existed is None

        return await self._run("put_problem", put_problem, write=True)

    async def get_problem(self, course: str, problem_id: str) -> ProblemRecord | None:
        """The problem, or None."""

        def get_problem(conn: sqlite3.Connection) -> ProblemRecord | None:
            row = conn.execute(
                f"SELECT {_PROBLEM_COLUMNS} FROM problems WHERE course = ? AND id = ?",
                (course, problem_id),
            ).fetchone()
            return None if row is None else _problem(row)

        return await self._run("get_problem", get_problem)

    async def list_problems(self, course: str) -> list[ProblemRecord]:
        """The course's problems, by id."""

        def list_problems(conn: sqlite3.Connection) -> list[ProblemRecord]:
            rows = conn.execute(
                f"SELECT {_PROBLEM_COLUMNS} FROM problems WHERE course = ? ORDER BY id", (course,)
            ).fetchall()
            return [_problem(row) for row in rows]

        return await self._run("list_problems", list_problems)

    async def count_problems(self, course: str) -> int:
        """How many problems the course has."""

        def count_problems(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT count(*) FROM problems WHERE course = ?", (course,))
            return int(row.fetchone()[0])

        return await self._run("count_problems", count_problems)

    async def delete_problem(self, course: str, problem_id: str) -> bool:
        """Delete the problem and, by its foreign key, every learner's progress on it."""

        def delete_problem(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM problems WHERE course = ? AND id = ?", (course, problem_id)
            )
            return cursor.rowcount > 0

        return await self._run("delete_problem", delete_problem, write=True)

    async def get_policy(self, course: str) -> CoursePolicy:
        """The course's policy; ``open`` with no window when none was set."""

        return await self._run("get_policy", lambda conn: _get_policy(conn, course))

    async def put_policy(self, policy: CoursePolicy) -> None:
        """Set the course's policy."""
        now = time.time()

        def put_policy(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO course_policies"
                " (course, mode, hint_only_from, hint_only_until, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (course) DO UPDATE SET mode = excluded.mode,"
                " hint_only_from = excluded.hint_only_from,"
                " hint_only_until = excluded.hint_only_until, updated_at = excluded.updated_at",
                (policy.course, policy.mode, policy.hint_only_from, policy.hint_only_until, now),
            )

        await self._run("put_policy", put_policy, write=True)

    async def get_progress(self, user_id: str, course: str, problem_id: str) -> ProblemProgress:
        """The learner's progress on the problem; zeros when they have not started it."""

        def get_progress(conn: sqlite3.Connection) -> ProblemProgress:
            row = conn.execute(
                f"SELECT {_PROGRESS_COLUMNS} FROM problem_progress"
                " WHERE user_id = ? AND course = ? AND problem = ?",
                (user_id, course, problem_id),
            ).fetchone()
            if row is None:
                return ProblemProgress(user_id=user_id, course=course, problem=problem_id)
            return progress_from_row(row)

        return await self._run("get_progress", get_progress)

    async def advance_rung(self, user_id: str, course: str, problem_id: str, max_rung: int) -> int:
        """Raise the learner's hint rung by one, to at most ``max_rung``, in one statement."""
        if max_rung < 0:
            raise ValueError("max_rung must be 0 or more")
        now = time.time()

        def advance_rung(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"INSERT INTO problem_progress ({_PROGRESS_COLUMNS})"
                " VALUES (?, ?, ?, min(1, ?), 0, 0, ?)"
                " ON CONFLICT (user_id, course, problem) DO UPDATE"
                " SET rung = min(problem_progress.rung + 1, ?), updated_at = excluded.updated_at"
                " RETURNING rung",
                (user_id, course, problem_id, max_rung, now, max_rung),
            ).fetchall()
            # fetchall: the statement runs to its end, so autocommit commits it now.
            return int(rows[0]["rung"])

        return await self._run("advance_rung", advance_rung, write=True)

    async def record_attempt(
        self, user_id: str, course: str, problem_id: str, correct: bool
    ) -> ProblemProgress:
        """Count an attempt, solving the problem when it is correct, in one statement."""
        now = time.time()

        def record_attempt(conn: sqlite3.Connection) -> ProblemProgress:
            rows = conn.execute(
                f"INSERT INTO problem_progress ({_PROGRESS_COLUMNS})"
                " VALUES (?, ?, ?, 0, 1, ?, ?)"
                " ON CONFLICT (user_id, course, problem) DO UPDATE"
                " SET attempts = problem_progress.attempts + 1,"
                " solved = max(problem_progress.solved, excluded.solved),"
                " updated_at = excluded.updated_at"
                f" RETURNING {_PROGRESS_COLUMNS}",
                (user_id, course, problem_id, int(correct), now),
            ).fetchall()
            return progress_from_row(rows[0])

        return await self._run("record_attempt", record_attempt, write=True)

    async def _run(
        self, operation: str, fn: Callable[[sqlite3.Connection], _T], *, write: bool = False
    ) -> _T:
        """Run ``fn`` with the connection on the store's thread, in one trip.

        ``write``: ``fn`` changes the database, so it runs in a transaction (see
        :func:`_drain`): all of it or none of it is stored.
        """
        db = self._db
        if db is None:
            raise StoreError("store is not open")
        # Only this loop's thread sends operations, and only the store's thread clears
        # ``draining``, after its last use of the connection: nothing else uses it now.
        if not db.draining and db.conn is not None:
            try:
                with _errors(operation):
                    if not write:
                        return fn(db.conn)
                    if db.commit_per_round:
                        return self._in_round(db, db.conn, fn)
                    result = _in_transaction(fn)(db.conn)
                    # Commits work again: back to one commit per round.
                    db.commit_per_round = True
                    return result
            except StoreError as exc:
                # Within the round's transaction this process holds the write lock already.
                if not _busy(exc) or db.round_open:
                    raise
            # Another process holds the write lock: wait for it on the store's thread.
        call = _Call(operation, fn, write)
        with db.lock:
            db.pending.append(call)
            start, db.draining = not db.draining, True
        # Submitted before this returns, so an operation found open above is
        # queued ahead of the close() that may follow it.
        if start:
            db.executor.submit(_drain, db)
        # Cancelling the wait cancels the call unless the thread has started it.
        return await asyncio.wrap_future(call.future)

    def _in_round(
        self, db: _Database, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]
    ) -> _T:
        """Run a write in this round's transaction, in a savepoint of its own.

        The first write of a round begins the transaction and schedules its
        COMMIT for the end of the round (:meth:`_commit_round`), ahead of every
        callback that the write's caller schedules after it: a frame sent because
        a write returned goes out after that write is committed.
        """
        if not db.round_open:
            conn.execute("BEGIN IMMEDIATE")
            db.round_open = True
            asyncio.get_running_loop().call_soon(self._commit_round, db)
        conn.execute("SAVEPOINT operation")
        try:
            result = fn(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO operation")
                conn.execute("RELEASE operation")
            else:
                # SQLite rolled the whole transaction back (a full disk, an I/O error).
                self._round_lost(db, "rolled back by SQLite")
            raise
        conn.execute("RELEASE operation")
        db.round_writes += 1
        return result

    def _commit_round(self, db: _Database) -> None:
        """Commit the writes of the round that ended (see :meth:`_in_round`)."""
        if not db.round_open:
            return
        if db.conn is None:
            self._round_lost(db, "connection closed")
            return
        try:
            db.conn.execute("COMMIT")
        except _ERRORS as exc:
            _rollback(db.conn)
            self._round_lost(db, str(exc))
        else:
            db.round_open, db.round_writes = False, 0

    def _round_lost(self, db: _Database, error: str) -> None:
        """The round's transaction is gone: say so, and commit each write alone until one
        commits again, so that the next failures reach their callers."""
        log.error("store.round_lost", writes=db.round_writes, error=error)
        db.round_open, db.round_writes, db.commit_per_round = False, 0, False


@dataclass(eq=False)
class _Call:
    """One operation waiting for the store's thread."""

    operation: str
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    future: Future[Any] = field(default_factory=Future)


@dataclass(eq=False)
class _Database:
    """The store's one thread, and the connection that lives on it while open."""

    executor: ThreadPoolExecutor
    # Opened and closed on the executor's thread; used there or on the loop's (see _run).
    conn: sqlite3.Connection | None = None
    # How long an operation on the executor's thread waits for another process's lock.
    busy_timeout_ms: int = 0
    # A connection of the executor's thread for checkpoints (none for ":memory:").
    checkpoints: sqlite3.Connection | None = None
    # Operations sent and not yet taken by the thread; whether a drain is queued or running.
    pending: deque[_Call] = field(default_factory=deque)
    draining: bool = False
    # Writes on the loop's thread share one transaction per round of the loop (see
    # SQLiteStore._in_round): whether it is open, and how many writes it holds.
    round_open: bool = False
    round_writes: int = 0
    # False after a round's transaction was lost: each write commits alone until one does.
    commit_per_round: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


def _drain(db: _Database) -> None:
    """Run the pending operations, in the order they were sent, until none is left.

    Writes that queued up together share one transaction (a group commit), each in
    a savepoint of its own, so one failing operation leaves the others stored. Under
    load most of a write's time is its BEGIN and COMMIT, and this pays them once per
    batch instead of once per operation.
    """
    while True:
        with db.lock:
            if not db.pending:
                db.draining = False
                return
            batch = list(db.pending)
            db.pending.clear()
        # Dropped when the caller gave up before the thread got to it.
        calls = [call for call in batch if call.future.set_running_or_notify_cancel()]
        try:
            _run_calls(db.conn, calls, db.busy_timeout_ms)
        finally:
            # Whatever escaped (it should not), no caller waits forever.
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(StoreError(f"{call.operation} failed"))


def _run_calls(
    conn: sqlite3.Connection | None, calls: list[_Call], busy_timeout_ms: int = 0
) -> None:
    """Run ``calls``, waiting up to ``busy_timeout_ms`` for another process's write lock."""
    if conn is None:
        for call in calls:
            call.future.set_exception(StoreError("store is not open"))
        return
    if busy_timeout_ms:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    try:
        _run_in_order(conn, calls)
    finally:
        if busy_timeout_ms:
            conn.execute("PRAGMA busy_timeout = 0")


def _run_in_order(conn: sqlite3.Connection, calls: list[_Call]) -> None:
    if sum(call.write for call in calls) > 1:
        _run_batch(conn, calls)
    else:
        for call in calls:
            try:
                result = (_in_transaction(call.fn) if call.write else call.fn)(conn)
            except Exception as exc:
                _fail(call, exc)
            else:
                call.future.set_result(result)


def _run_batch(conn: sqlite3.Connection, calls: list[_Call]) -> None:
    """Run ``calls`` in one transaction, each in a savepoint; settle them after COMMIT."""
    outcomes: list[tuple[_Call, Any, Exception | None]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for call in calls:
            conn.execute("SAVEPOINT operation")
            try:
                result = call.fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO operation")
                conn.execute("RELEASE operation")
                outcomes.append((call, None, exc))
            else:
                conn.execute("RELEASE operation")
                outcomes.append((call, result, None))
        conn.execute("COMMIT")
    except _ERRORS as exc:
        # BEGIN, a savepoint or COMMIT failed: nothing of the batch is stored.
        _rollback(conn)
        for call in calls:
            call.future.set_exception(StoreError(f"{call.operation} failed: {exc}"))
        return
    for call, result, error in outcomes:
        if error is None:
            call.future.set_result(result)
        else:
            _fail(call, error)


def _busy(error: StoreError) -> bool:
    """True when the operation failed because another process holds the database's lock."""
    cause = error.__cause__
    return isinstance(cause, sqlite3.OperationalError) and cause.sqlite_errorcode in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )


def _fail(call: _Call, error: Exception) -> None:
    """Fail ``call`` with ``error``, a database error reported as :class:`StoreError`."""
    if isinstance(error, _ERRORS):
        wrapped = StoreError(f"{call.operation} failed: {error}")
        wrapped.__cause__ = error
        call.future.set_exception(wrapped)
    else:
        call.future.set_exception(error)


def _connect(db: _Database, path: str, timeout_s: float) -> None:
    with _errors("open"):
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _private_file(path)
        # timeout is SQLite's busy timeout: how long to wait for another
        # process's write lock before failing.
        conn = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
    try:
        with _errors("open"):
            conn.row_factory = sqlite3.Row
            _enable_wal(conn, timeout_s)
            # With WAL, NORMAL cannot corrupt the file; a power cut may
            # lose the last commits, which a tutoring history can afford.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn)
            # Operations on the loop's thread never wait for a lock (see _run).
            conn.execute("PRAGMA busy_timeout = 0")
            if path != ":memory:":
                # Checkpoints copy the log into the database file and fsync both: done
                # on the store's thread (see _checkpoint), never on a COMMIT of the loop's.
                conn.execute("PRAGMA wal_autocheckpoint = 0")
                conn.execute(f"PRAGMA journal_size_limit = {_WAL_KEEP_BYTES}")
                db.checkpoints = sqlite3.connect(
                    path, timeout=timeout_s, isolation_level=None, check_same_thread=False
                )
    except BaseException:
        with contextlib.suppress(*_ERRORS):
            conn.close()
            if db.checkpoints is not None:
                db.checkpoints.close()
        raise
    db.busy_timeout_ms = int(timeout_s * 1000)
    db.conn = conn


def _checkpoint(db: _Database) -> None:
    """Copy what the write-ahead log holds into the database file (PASSIVE: waits for no one).

    The log then starts again from its beginning with the next write.
    """
    if db.checkpoints is not None and db.conn is not None:
        with _errors("checkpoint"):
            db.checkpoints.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _private_file(path: str) -> None:
    """Create the database file 0600, or tighten it to 0600: it holds every conversation.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode,
    whatever the umask, so this makes them private too.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            # A file of another user's stays as it is; SQLite reports what follows.
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _open_session(
    conn: sqlite3.Connection, session_id: str, user_id: str, course: str, now: float
) -> SessionRecord:
    """The session, created for ``user_id`` if it does not exist; raises if it is not theirs."""
    conn.execute(
        "INSERT INTO sessions (id, user_id, course, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (session_id, user_id, course, now, now),
    )
    session = _fetch_session(conn, session_id)
    if session is None:
        raise StoreError(f"session {session_id!r} vanished while being opened")
    if session.user_id != user_id:
        raise SessionForbidden(f"session {session_id!r} belongs to another user")
    if session.course != course:
        raise SessionCourseMismatch(f"session {session_id!r} belongs to another course")
    return session


def _get_policy(conn: sqlite3.Connection, course: str) -> CoursePolicy:
    """The course's policy; ``open`` with no window when none was set."""
    row = conn.execute(
        "SELECT course, mode, hint_only_from, hint_only_until FROM course_policies"
        " WHERE course = ?",
        (course,),
    ).fetchone()
    return CoursePolicy(course=course) if row is None else policy_from_row(row)


def _add_message(conn: sqlite3.Connection, message: MessageRecord) -> None:
    """Store a message, touch its session, and title the session after its first question."""
    title = session_title(message.text) if message.role == "learner" else ""
    cursor = conn.execute(
        "UPDATE sessions SET updated_at = max(updated_at, ?),"
        " title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
        (message.created_at, title, message.session_id),
    )
    if cursor.rowcount == 0:
        raise StoreError(f"session {message.session_id!r} does not exist")
    conn.execute(
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


def _list_messages(
    conn: sqlite3.Connection,
    session_id: str,
    limit: int,
    before: str | None,
    *,
    sources: bool = True,
) -> list[MessageRecord]:
    """The session's last ``limit`` messages (before the message ``before``), oldest first.

    ``sources=False`` leaves each message's sources empty, which saves decoding them.
    """
    # With a cursor, only messages before it; an id that is not the session's matches none.
    cursor = " AND seq < (SELECT seq FROM messages WHERE id = ? AND session_id = ?)"
    where, params = (cursor, (before, session_id)) if before is not None else ("", ())
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM"
        f" (SELECT {_MESSAGE_COLUMNS}, seq FROM messages WHERE session_id = ?{where}"
        "  ORDER BY seq DESC LIMIT ?)"
        " ORDER BY seq",
        (session_id, *params, max(limit, 0)),
    ).fetchall()
    if not sources:
        return [message_from_row(row, []) for row in rows]
    return [message_from_row(row, orjson.loads(row["sources"])) for row in rows]


def _disconnect(db: _Database) -> None:
    checkpoints, db.checkpoints = db.checkpoints, None
    if checkpoints is not None:
        with contextlib.suppress(*_ERRORS):
            checkpoints.close()
    # The last connection to close checkpoints the log and removes it.
    conn, db.conn = db.conn, None
    if conn is not None:
        conn.close()


def _in_transaction(
    fn: Callable[[sqlite3.Connection], _T],
) -> Callable[[sqlite3.Connection], _T]:
    """``fn`` between BEGIN IMMEDIATE and COMMIT, rolled back if it raises."""

    def transaction(conn: sqlite3.Connection) -> _T:
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return result

    return transaction


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(migrations.SCHEMA_MIGRATIONS_SQL["sqlite"])
    for migration in migrations.pending(migrations.load("sqlite"), _applied(conn)):
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
            conn.executescript(script)
        except sqlite3.Error:
            _rollback(conn)
            if migration.version in _applied(conn):
                continue
            raise


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite reports
    # "locked" at once instead of waiting the busy timeout when another
    # process is opening it at the same moment.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_S)


def _applied(conn: sqlite3.Connection) -> set[int]:
    rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
    return {int(row[0]) for row in rows}


def _rollback(conn: sqlite3.Connection) -> None:
    # Fails harmlessly when SQLite already ended the transaction itself.
    with contextlib.suppress(*_ERRORS):
        conn.execute("ROLLBACK")


def _fetch_session(conn: sqlite3.Connection, session_id: str) -> SessionRecord | None:
    row = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
    ).fetchone()
    return None if row is None else session_from_row(row)


def _problem(row: sqlite3.Row) -> ProblemRecord:
    return problem_from_row(row, orjson.loads(row["accept"]), orjson.loads(row["pages"]))


@contextlib.contextmanager
def _errors(operation: str) -> Iterator[None]:
    try:
        yield
    except _ERRORS as exc:
        raise StoreError(f"{operation} failed: {exc}") from exc
