"""Tests of the storage layer, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog.testing

from core.errors import SessionCourseMismatch, SessionForbidden, StoreError
from core.settings import Settings, StoreSettings
from server.backends import create_store
from store import migrations
from store.postgres import PostgresStore
from store.sqlite import CHECKPOINT_EVERY_S, SQLiteStore
from store.store import CoursePolicy, MessageRecord, Store
from tests.store.factory import StoreFactory, make_message, new_session
from tests.support.postgres import temporary_database

UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/postgres"

# Migrations


def test_dialects_have_the_same_migration_versions() -> None:
    """Every schema version exists for both SQLite and PostgreSQL."""
    sqlite = [m.version for m in migrations.load("sqlite")]
    postgres = [m.version for m in migrations.load("postgres")]
    assert sqlite == postgres == sorted(set(sqlite))


async def test_open_applies_every_migration(stores: StoreFactory) -> None:
    """Opening a fresh database records every migration version."""
    await stores.open()
    expected = [m.version for m in migrations.load(stores.kind)]
    assert sorted(await stores.applied_versions()) == expected


async def test_second_open_applies_nothing(stores: StoreFactory) -> None:
    """Opening an up-to-date database leaves ``schema_migrations`` unchanged."""
    await (await stores.open()).close()
    before = await stores.fetch("SELECT version, applied_at FROM schema_migrations")
    await stores.open()
    assert await stores.fetch("SELECT version, applied_at FROM schema_migrations") == before


async def test_concurrent_opens_migrate_once(stores: StoreFactory) -> None:
    """Stores opening the same fresh database at once all succeed and migrate it once."""
    opened = await asyncio.gather(*(stores.open() for _ in range(4)))
    expected = [m.version for m in migrations.load(stores.kind)]
    assert sorted(await stores.applied_versions()) == expected
    for store in opened:
        await store.ping()


async def test_create_store_chooses_by_url(stores: StoreFactory) -> None:
    """``create_store`` picks the implementation from the database URL."""
    expected = SQLiteStore if stores.kind == "sqlite" else PostgresStore
    assert isinstance(stores.make(), expected)


def test_sqlite_is_the_default(tmp_path: Path) -> None:
    """Without ``DATABASE_URL`` the store is SQLite in the data directory."""
    assert isinstance(create_store(Settings(data_dir=tmp_path)), SQLiteStore)


# Lifecycle


async def test_ping_answers_when_open(store: Store) -> None:
    """An open store answers a ping."""
    await store.ping()


async def test_ping_after_close_raises(store: Store) -> None:
    """A closed store fails its ping with StoreError."""
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()


async def test_use_before_open_raises(stores: StoreFactory) -> None:
    """A store that was never opened raises StoreError instead of crashing."""
    with pytest.raises(StoreError):
        await stores.make().get_session("s1")


async def test_open_twice_raises(store: Store) -> None:
    """Opening an open store is refused."""
    with pytest.raises(StoreError):
        await store.open()


async def test_close_twice_is_harmless(store: Store) -> None:
    """Closing a closed store does nothing."""
    await store.close()
    await store.close()


async def test_data_survives_reopen(stores: StoreFactory) -> None:
    """Sessions and messages written by one store are read by the next."""
    first = await stores.open()
    session = await new_session(first)
    message = make_message(1)
    await first.add_message(message)
    await first.close()
    second = await stores.open()
    assert await second.get_session("s1") == msgspec.structs.replace(
        session, title=message.text, updated_at=message.created_at
    )
    assert await second.list_messages("s1") == [message]


async def test_sqlite_creates_the_parent_directory(tmp_path: Path) -> None:
    """The SQLite file's missing directories are created on open."""
    path = tmp_path / "a" / "b" / "store.sqlite3"
    store = SQLiteStore(str(path), StoreSettings())
    await store.open()
    try:
        assert path.exists()
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def sqlite_with_a_session(
    path: Path, query_timeout_s: float = 5.0
) -> AsyncIterator[SQLiteStore]:
    """A SQLite store on ``path`` holding session s1 of u1, closed afterwards."""
    store = SQLiteStore(str(path), StoreSettings(query_timeout_s=query_timeout_s))
    await store.open()
    try:
        await new_session(store)
        # The round's writes commit when the round ends: another process may write then.
        await asyncio.sleep(0)
        yield store
    finally:
        await store.close()


async def test_sqlite_writes_wait_for_another_process_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    """While another process holds the write lock, writes wait (in order) and the loop runs on."""
    path = tmp_path / "store.sqlite3"
    async with sqlite_with_a_session(path, query_timeout_s=30.0) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        writes = [asyncio.ensure_future(store.add_message(make_message(n))) for n in range(5)]
        # A write waiting on the loop's thread would hold the loop (and this sleep) up
        # to the 30 s timeout and then fail: here the writes are still pending.
        await asyncio.sleep(0.2)
        assert not any(write.done() for write in writes)
        other.execute("COMMIT")
        other.close()
        await asyncio.gather(*writes)
        assert [m.id for m in await store.list_messages("s1")] == [
            make_message(n).id for n in range(5)
        ]
        # The queue is empty again: the next operation runs at once.
        await store.add_message(make_message(5))
        assert len(await store.list_messages("s1")) == 6


def read_around(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read with a connection of its own, as another process would."""
    other = sqlite3.connect(path)
    try:
        return other.execute(sql).fetchall()
    finally:
        other.close()


async def test_sqlite_checkpoints_the_log_into_the_file_while_open(tmp_path: Path) -> None:
    """Within a checkpoint interval, what was written is in the database file itself."""
    path = tmp_path / "store.sqlite3"
    async with sqlite_with_a_session(path) as store:
        for n in range(50):
            await store.add_message(make_message(n))
        await asyncio.sleep(CHECKPOINT_EVERY_S * 2.5)
        # A copy of the file alone, without the -wal log beside it.
        alone = tmp_path / "alone.sqlite3"
        shutil.copyfile(path, alone)
        [(count,)] = read_around(alone, "SELECT count(*) FROM messages")
        assert count == 50


async def test_sqlite_a_failed_write_leaves_the_others_of_its_round_stored(
    tmp_path: Path,
) -> None:
    """Writes sent without a pause share one commit; one that fails is undone alone."""
    path = tmp_path / "store.sqlite3"
    async with sqlite_with_a_session(path) as store:
        (session_touched_at,) = read_around(path, "SELECT updated_at FROM sessions")[0]
        await store.add_message(make_message(1))
        with pytest.raises(StoreError, match="'missing' does not exist"):
            await store.add_message(make_message(2, session_id="missing"))
        # Its session is touched before its insert fails on the duplicate id: undone too.
        with pytest.raises(StoreError, match="add_message failed"):
            await store.add_message(make_message(1, created_at=time.time() + 3600))
        await store.add_message(make_message(3))
        await asyncio.sleep(0)
        assert read_around(path, "SELECT id FROM messages ORDER BY seq") == [
            (make_message(1).id,),
            (make_message(3).id,),
        ]
        (updated_at,) = read_around(path, "SELECT updated_at FROM sessions")[0]
        assert session_touched_at < updated_at < time.time() + 60


async def test_sqlite_write_is_committed_before_what_its_caller_schedules_next(
    tmp_path: Path,
) -> None:
    """A frame sent because a write returned goes out after the write is committed."""
    path = tmp_path / "store.sqlite3"
    async with sqlite_with_a_session(path) as store:
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[list[tuple[Any, ...]]] = loop.create_future()
        await store.add_message(make_message(1))
        loop.call_soon(lambda: seen.set_result(read_around(path, "SELECT id FROM messages")))
        assert await seen == [(make_message(1).id,)]


async def test_sqlite_round_that_cannot_commit_is_logged_then_failures_reach_callers(
    tmp_path: Path,
) -> None:
    """A round whose COMMIT fails is logged with its writes; until a write commits again,
    each write commits alone, so the next failure reaches its caller."""
    path = tmp_path / "store.sqlite3"

    def orphan(conn: sqlite3.Connection) -> None:
        # A message of no session, checked only at COMMIT: the COMMIT fails.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            "INSERT INTO messages (id, session_id, seq, role, text, created_at)"
            " VALUES ('orphan', 'missing', 1, 'learner', 'lost', 0)"
        )

    async with sqlite_with_a_session(path) as store:
        with structlog.testing.capture_logs() as logs:
            await store.add_message(make_message(1))
            await store._run("orphan", orphan, write=True)
            await asyncio.sleep(0)
        assert [(e["event"], e["writes"]) for e in logs if e["log_level"] == "error"] == [
            ("store.round_lost", 2)
        ]
        with pytest.raises(StoreError, match="orphan failed"):
            await store._run("orphan", orphan, write=True)
        await store.add_message(make_message(2))
        await store.add_message(make_message(3))
        await asyncio.sleep(0)
        assert read_around(path, "SELECT id FROM messages ORDER BY seq") == [
            (make_message(2).id,),
            (make_message(3).id,),
        ]


async def test_sqlite_write_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    """A write still locked out after the query timeout fails with StoreError; nothing is kept."""
    path = tmp_path / "store.sqlite3"
    async with sqlite_with_a_session(path, query_timeout_s=0.2) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError, match="add_message failed"):
                await store.add_message(make_message(1))
        finally:
            other.execute("COMMIT")
            other.close()
        assert await store.list_messages("s1") == []


@pytest.mark.postgres
async def test_unreachable_postgres_raises_store_error() -> None:
    """Opening a store on a port nobody listens on raises StoreError."""
    store = PostgresStore(StoreSettings(database_url=UNREACHABLE_POSTGRES, query_timeout_s=2.0))
    with pytest.raises(StoreError):
        await store.open()


# Users


async def test_ensure_user_refreshes_role_and_last_seen(stores: StoreFactory) -> None:
    """A second ensure_user updates role and last-seen time but keeps the creation time."""
    store = await stores.open()
    await store.ensure_user("u1", "learner")
    [(role, created_at, first_seen)] = await stores.fetch(
        "SELECT role, created_at, last_seen_at FROM users"
    )
    await store.ensure_user("u1", "teacher")
    [(role, created_again, last_seen)] = await stores.fetch(
        "SELECT role, created_at, last_seen_at FROM users"
    )
    assert (role, created_again) == ("teacher", created_at)
    assert last_seen >= first_seen


# Sessions


async def test_open_session_creates_it(store: Store) -> None:
    """A new session belongs to its user and course, with no title or hints."""
    before = time.time()
    session = await new_session(store)
    assert (session.id, session.user_id, session.course) == ("s1", "u1", "calculus")
    assert (session.title, session.hint_level) == ("", 0)
    assert before <= session.created_at == session.updated_at <= time.time()


async def test_open_session_returns_the_existing_one(store: Store) -> None:
    """Opening an existing session returns it unchanged."""
    first = await new_session(store)
    assert await store.open_session("s1", "u1", "calculus") == first


async def test_concurrent_open_session_agree(store: Store) -> None:
    """Concurrent opens of a new session all return the same record."""
    await store.ensure_user("u1", "learner")
    opened = await asyncio.gather(*(store.open_session("s1", "u1", "calculus") for _ in range(8)))
    assert len(set(opened)) == 1


async def test_open_session_of_another_user_is_forbidden(store: Store) -> None:
    """A session owned by someone else raises SessionForbidden."""
    await new_session(store, user_id="u1")
    await store.ensure_user("u2", "learner")
    with pytest.raises(SessionForbidden):
        await store.open_session("s1", "u2", "calculus")


async def test_open_session_in_another_course_mismatches(store: Store) -> None:
    """A session of another course raises SessionCourseMismatch."""
    await new_session(store, course="calculus")
    with pytest.raises(SessionCourseMismatch):
        await store.open_session("s1", "u1", "algebra")


async def test_open_session_for_unknown_user_raises(store: Store) -> None:
    """A session needs its user to exist first."""
    with pytest.raises(StoreError):
        await store.open_session("s1", "nobody", "calculus")


async def test_get_session_unknown_is_none(store: Store) -> None:
    """An unknown session id reads as None."""
    assert await store.get_session("missing") is None


async def test_list_sessions_newest_updated_first(store: Store) -> None:
    """Sessions come back by last update, newest first."""
    for session_id in ("s1", "s2", "s3"):
        await new_session(store, session_id)
    await store.add_message(make_message(1, session_id="s1", created_at=time.time() + 60))
    listed = await store.list_sessions("u1")
    assert [s.id for s in listed] == ["s1", "s3", "s2"]


async def test_list_sessions_only_the_users_own(store: Store) -> None:
    """A user sees only their own sessions."""
    await new_session(store, "s1", user_id="u1")
    await new_session(store, "s2", user_id="u2")
    assert [s.id for s in await store.list_sessions("u1")] == ["s1"]
    assert [s.id for s in await store.list_sessions("u2")] == ["s2"]


async def test_list_sessions_limit(store: Store) -> None:
    """``limit`` caps the number of sessions listed, keeping the newest."""
    for session_id in ("s1", "s2", "s3"):
        await new_session(store, session_id)
    assert [s.id for s in await store.list_sessions("u1", limit=2)] == ["s3", "s2"]


async def test_hint_level_persists(store: Store) -> None:
    """The hint level set on a session is read back by get and open."""
    await new_session(store)
    await store.set_hint_level("s1", 3)
    reopened = await store.open_session("s1", "u1", "calculus")
    session = await store.get_session("s1")
    assert session is not None
    assert (session.hint_level, reopened.hint_level) == (3, 3)


async def test_set_hint_level_of_unknown_session_raises(store: Store) -> None:
    """Setting the hint level of a missing session raises StoreError."""
    with pytest.raises(StoreError):
        await store.set_hint_level("missing", 1)


async def test_title_is_the_first_learner_message(store: Store) -> None:
    """The session is titled after its first learner message, not a tutor one or a later one."""
    await new_session(store)
    await store.add_message(make_message(1, role="tutor", text="Welcome!"))
    await store.add_message(make_message(2, text="What is a limit?"))
    await store.add_message(make_message(3, text="And a derivative?"))
    session = await store.get_session("s1")
    assert session is not None
    assert session.title == "What is a limit?"


async def test_title_is_cut_to_80_characters(store: Store) -> None:
    """A long first question is cut to 80 characters for the title."""
    await new_session(store)
    await store.add_message(make_message(1, text="x" * 200))
    session = await store.get_session("s1")
    assert session is not None
    assert session.title == "x" * 80


# Messages


async def test_message_round_trips_every_field(store: Store) -> None:
    """Every field of a message, sources and cached included, reads back equal."""
    await new_session(store)
    question = make_message(1, text="Why does ε-δ work?", mode="explain", created_at=1.5e9 + 0.1)
    answer = MessageRecord(
        id="s1-m2",
        session_id="s1",
        role="tutor",
        text="Because… ✓",
        created_at=1_735_689_600.123456,
        mode="explain",
        stream_id="st-42",
        reason="stop",
        sources=[
            {"document": "calculus.pdf", "page": 3, "heading": "Limits", "score": 0.8123},
            {"document": "notes.md", "page": 0, "snippet": 'ε > 0 "quoted"', "extra": None},
        ],
        model="gpt-4o-mini",
        cached=True,
    )
    await store.add_message(question)
    await store.add_message(answer)
    assert await store.list_messages("s1") == [question, answer]


async def test_open_ask_opens_reads_history_and_stores_the_question(store: Store) -> None:
    """open_ask returns the session and the history before the question, then stores it."""
    await new_session(store)
    earlier = [make_message(n) for n in range(3)]
    for message in earlier:
        await store.add_message(message)
    question = make_message(3, text="what is a limit?")
    opening = await store.open_ask("s1", "u1", "calculus", 2, question)
    assert (opening.session.id, opening.session.user_id) == ("s1", "u1")
    assert opening.history == earlier[1:]
    assert (opening.policy, opening.stored) == (CoursePolicy(course="calculus"), True)
    assert await store.list_messages("s1") == [*earlier, question]


async def test_open_ask_creates_a_new_session_without_a_message(store: Store) -> None:
    """A first ask opens the session with an empty history; no message stores nothing."""
    await store.ensure_user("u1", "learner")
    opening = await store.open_ask("new", "u1", "calculus", 10)
    assert (opening.session.id, opening.session.course) == ("new", "calculus")
    assert (opening.history, opening.stored) == ([], False)
    assert await store.list_messages("new") == []


async def test_open_ask_leaves_an_explain_question_under_hint_only_to_the_caller(
    store: Store,
) -> None:
    """Under a hint_only policy an explain question is not stored (it becomes a hint); a hint is."""
    await new_session(store)
    policy = CoursePolicy(course="calculus", mode="hint_only")
    await store.put_policy(policy)
    explain = make_message(1, mode="explain")
    opening = await store.open_ask("s1", "u1", "calculus", 10, explain)
    assert (opening.policy, opening.stored) == (policy, False)
    hint = make_message(2, mode="hint")
    assert (await store.open_ask("s1", "u1", "calculus", 10, hint)).stored
    assert await store.list_messages("s1") == [hint]


async def test_open_ask_of_another_users_session_stores_nothing(store: Store) -> None:
    """Another user's session is forbidden, and their question is not stored in it."""
    await new_session(store, user_id="u1")
    await store.ensure_user("u2", "learner")
    with pytest.raises(SessionForbidden):
        await store.open_ask("s1", "u2", "calculus", 10, make_message(1))
    with pytest.raises(SessionCourseMismatch):
        await store.open_ask("s1", "u1", "algebra", 10, make_message(2))
    assert await store.list_messages("s1") == []


async def test_add_message_touches_the_session(store: Store) -> None:
    """Adding a message moves the session's ``updated_at`` to the message time."""
    await new_session(store)
    message = make_message(1, created_at=time.time() + 30)
    await store.add_message(message)
    session = await store.get_session("s1")
    assert session is not None
    assert session.updated_at == message.created_at


async def test_add_message_to_unknown_session_raises(store: Store) -> None:
    """A message for a missing session raises StoreError."""
    with pytest.raises(StoreError):
        await store.add_message(make_message(1, session_id="missing"))


async def test_duplicate_message_id_raises(store: Store) -> None:
    """Adding a message id twice raises StoreError."""
    await new_session(store)
    await store.add_message(make_message(1))
    with pytest.raises(StoreError):
        await store.add_message(make_message(1))


async def test_concurrent_writes_one_failing_keep_the_others(store: Store) -> None:
    """Writes sent together are all stored but one that fails, which takes no other with it."""
    await new_session(store)
    await store.add_message(make_message(0))
    batch = [make_message(n) for n in range(1, 6)]
    duplicate = make_message(0, text="again")
    outcomes = await asyncio.gather(
        *(store.add_message(m) for m in [*batch[:2], duplicate, *batch[2:]]),
        store.set_hint_level("s1", 2),
        return_exceptions=True,
    )
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType",
        "NoneType",
        "StoreError",
        "NoneType",
        "NoneType",
        "NoneType",
        "NoneType",
    ]
    assert sorted(m.text for m in await store.list_messages("s1")) == [
        "message 0",
        *(m.text for m in batch),
    ]
    session = await store.get_session("s1")
    assert session is not None and session.hint_level == 2


async def test_a_cancelled_write_that_waited_is_not_stored(store: Store) -> None:
    """A write whose caller gave up while it waited for the store is dropped, or fully stored."""
    await new_session(store)
    writes = [asyncio.ensure_future(store.add_message(make_message(n))) for n in range(20)]
    writes[-1].cancel()
    await asyncio.gather(*writes, return_exceptions=True)
    stored = {m.id for m in await store.list_messages("s1")}
    assert stored - {make_message(19).id} == {make_message(n).id for n in range(19)}


async def test_list_messages_limit_returns_the_last_in_order(store: Store) -> None:
    """``limit`` keeps the last messages, still oldest first."""
    await new_session(store)
    added = [make_message(n) for n in range(5)]
    for message in added:
        await store.add_message(message)
    assert await store.list_messages("s1", limit=3) == added[2:]


async def test_list_messages_pages_back_with_before(store: Store) -> None:
    """``before`` gives the page of messages ahead of a message; an unknown id gives none."""
    await new_session(store)
    await new_session(store, "s2")
    added = [make_message(n) for n in range(7)]
    for message in added:
        await store.add_message(message)
    await store.add_message(make_message(1, session_id="s2"))
    assert await store.list_messages("s1", limit=3, before=added[5].id) == added[2:5]
    assert await store.list_messages("s1", limit=3, before=added[2].id) == added[:2]
    assert await store.list_messages("s1", limit=3, before=added[0].id) == []
    assert await store.list_messages("s1", before="s2-m1") == []
    assert await store.list_messages("s1", before="nope") == []


async def test_list_messages_keeps_insertion_order(store: Store) -> None:
    """Messages come back in the order they were added, even when clocks disagree."""
    await new_session(store)
    added = [make_message(n, created_at=1_000.0 - n) for n in range(4)]
    for message in added:
        await store.add_message(message)
    assert await store.list_messages("s1") == added


async def test_list_messages_only_the_sessions_own(store: Store) -> None:
    """Messages of another session are not listed."""
    await new_session(store, "s1")
    await new_session(store, "s2")
    await store.add_message(make_message(1, session_id="s1"))
    await store.add_message(make_message(1, session_id="s2"))
    assert [m.id for m in await store.list_messages("s2")] == ["s2-m1"]


async def test_concurrent_messages_are_all_kept(store: Store) -> None:
    """Messages added concurrently to one session are all stored."""
    await new_session(store)
    added = [make_message(n) for n in range(10)]
    await asyncio.gather(*(store.add_message(m) for m in added))
    assert sorted(m.id for m in await store.list_messages("s1")) == sorted(m.id for m in added)


async def test_cancelled_write_leaves_the_store_usable(store: Store) -> None:
    """A write cancelled at any point leaves no transaction open behind it."""
    await new_session(store)
    for steps in range(8):
        task = asyncio.create_task(store.add_message(make_message(steps)))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        # Early steps cancel it; later ones may find it done already. Either is fine.
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await store.add_message(make_message(100))
    assert [m.id for m in await store.list_messages("s1")][-1] == "s1-m100"


# Read replica


@pytest.mark.postgres
async def test_read_url_serves_reads(postgres_stores: StoreFactory) -> None:
    """With READ_DATABASE_URL on the same database, reads see what was written."""
    store = await postgres_stores.open(read_database_url=postgres_stores.location)
    session = await new_session(store)
    message = make_message(1)
    await store.add_message(message)
    assert await store.get_session("s1") == msgspec.structs.replace(
        session, title=message.text, updated_at=message.created_at
    )
    assert await store.list_sessions("u1") == [await store.get_session("s1")]
    assert await store.list_messages("s1") == [message]


@pytest.mark.postgres
async def test_reads_go_to_the_read_url(postgres_stores: StoreFactory) -> None:
    """Reads use READ_DATABASE_URL: pointed at a database without tables, they fail."""
    async with temporary_database() as empty:
        store = await postgres_stores.open(read_database_url=empty)
        await new_session(store)
        await store.add_message(make_message(1))
        reads: list[Callable[[], Awaitable[object]]] = [
            lambda: store.get_session("s1"),
            lambda: store.list_sessions("u1"),
            lambda: store.list_messages("s1"),
        ]
        for read in reads:
            with pytest.raises(StoreError):
                await read()
        await store.close()


@pytest.mark.postgres
async def test_unreachable_read_url_fails_open(postgres_stores: StoreFactory) -> None:
    """A READ_DATABASE_URL nobody answers on makes open raise StoreError."""
    with pytest.raises(StoreError):
        await postgres_stores.open(read_database_url=UNREACHABLE_POSTGRES, query_timeout_s=2.0)
