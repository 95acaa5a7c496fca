"""Problems, course policies and learners' progress, on SQLite and the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from core.errors import StoreError
from store import migrations
from store.store import CoursePolicy, ProblemProgress, ProblemRecord, Store
from tests.store.factory import StoreFactory

WINDOW_FROM = 1_800_000_000.0
WINDOW_UNTIL = WINDOW_FROM + 7_200.0


def make_problem(problem_id: str = "p1", course: str = "calculus", **fields: Any) -> ProblemRecord:
    """A problem with every field set, unless given."""
    values: dict[str, Any] = {
        "statement": "Differentiate x² + 3x.",
        "answer": "2x + 3",
        "accept": ["3 + 2x", "2*x+3"],
        "policy": "hint_only",
        "pages": [12, 13],
        "updated_at": 1_735_689_600.123456,
        "updated_by": "ines",
    }
    return ProblemRecord(course=course, id=problem_id, **(values | fields))


# Migrations


async def test_problems_migration_upgrades_a_first_version_database(
    stores: StoreFactory,
) -> None:
    """A database a version-1 store wrote gains problems and keeps its sessions."""
    first = migrations.load(stores.kind)[0]
    assert first.version == 1
    await _version_one_database_with_a_session(stores, first)
    store = await stores.open()
    await store.put_problem(make_problem())
    assert sorted(await stores.applied_versions()) == [
        m.version for m in migrations.load(stores.kind)
    ]
    session = await store.get_session("s1")
    assert session is not None
    assert (session.user_id, session.course, session.title) == ("u1", "calculus", "Limits")
    assert await store.get_problem("calculus", "p1") == make_problem()


async def _version_one_database_with_a_session(
    stores: StoreFactory, migration: migrations.Migration
) -> None:
    """Bring a fresh database to ``migration`` alone, as a store of that version did, and use it."""
    if stores.kind == "sqlite":
        Path(stores.location).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(stores.location)
        try:
            conn.execute(migrations.SCHEMA_MIGRATIONS_SQL["sqlite"])
            conn.executescript(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, time.time()),
            )
            conn.executescript(_USER_AND_SESSION)
        finally:
            conn.close()
        return
    postgres = await asyncpg.connect(stores.location)
    try:
        await postgres.execute(migrations.SCHEMA_MIGRATIONS_SQL["postgres"])
        await postgres.execute(migration.sql)
        await postgres.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            migration.version,
            time.time(),
        )
        await postgres.execute(_USER_AND_SESSION)
    finally:
        await postgres.close()


_USER_AND_SESSION = """
INSERT INTO users (id, role, created_at, last_seen_at) VALUES ('u1', 'learner', 1.5, 1.5);
INSERT INTO sessions (id, user_id, course, title, created_at, updated_at)
VALUES ('s1', 'u1', 'calculus', 'Limits', 1.5, 1.5);
"""


# Problems


async def test_problem_round_trips_every_field(store: Store) -> None:
    """Every field of a problem, accepted forms and pages included, reads back equal."""
    problem = make_problem(statement='Why does ε-δ work? "quoted" ✓', accept=["ε", "δ"])
    await store.put_problem(problem)
    assert await store.get_problem("calculus", "p1") == problem


async def test_put_problem_says_created_then_replaced(store: Store) -> None:
    """The first put of an id creates the problem; the next replaces it."""
    assert await store.put_problem(make_problem()) is True
    assert await store.put_problem(make_problem(answer="3 + 2x", accept=[])) is False
    stored = await store.get_problem("calculus", "p1")
    assert stored is not None
    assert (stored.answer, stored.accept) == ("3 + 2x", [])


async def test_get_unknown_problem_is_none(store: Store) -> None:
    """An id no problem has reads as None."""
    await store.put_problem(make_problem())
    assert await store.get_problem("calculus", "p2") is None


async def test_problems_of_one_course_are_not_another_courses(store: Store) -> None:
    """The same id in two courses names two problems."""
    await store.put_problem(make_problem(course="calculus", answer="1"))
    await store.put_problem(make_problem(course="algebra", answer="2"))
    calculus = await store.get_problem("calculus", "p1")
    assert calculus is not None
    assert calculus.answer == "1"
    assert [p.course for p in await store.list_problems("algebra")] == ["algebra"]


async def test_list_problems_by_id(store: Store) -> None:
    """A course's problems are listed by id, whatever order they were put in."""
    for problem_id in ("p3", "p1", "p2"):
        await store.put_problem(make_problem(problem_id))
    assert [p.id for p in await store.list_problems("calculus")] == ["p1", "p2", "p3"]


async def test_list_problems_of_a_course_without_any_is_empty(store: Store) -> None:
    """A course with no problems lists none."""
    assert await store.list_problems("calculus") == []


async def test_count_problems(store: Store) -> None:
    """count_problems counts the course's problems only."""
    for problem_id in ("p1", "p2"):
        await store.put_problem(make_problem(problem_id))
    await store.put_problem(make_problem(course="algebra"))
    assert await store.count_problems("calculus") == 2


async def test_delete_problem(store: Store) -> None:
    """A deleted problem is gone; deleting it again reports that there was none."""
    await store.put_problem(make_problem())
    assert await store.delete_problem("calculus", "p1") is True
    assert await store.get_problem("calculus", "p1") is None
    assert await store.delete_problem("calculus", "p1") is False


async def test_delete_problem_deletes_its_progress(stores: StoreFactory) -> None:
    """Deleting a problem deletes every learner's progress on it and nothing else."""
    store = await stores.open()
    await store.put_problem(make_problem("p1"))
    await store.put_problem(make_problem("p2"))
    for user in ("u1", "u2"):
        await store.advance_rung(user, "calculus", "p1", 3)
    await store.record_attempt("u1", "calculus", "p2", correct=True)
    await store.delete_problem("calculus", "p1")
    rows = await stores.fetch("SELECT user_id, problem FROM problem_progress")
    assert rows == [("u1", "p2")]
    assert await store.get_progress("u2", "calculus", "p1") == ProblemProgress(
        user_id="u2", course="calculus", problem="p1"
    )


async def test_a_problem_put_again_keeps_its_progress(store: Store) -> None:
    """Editing a problem leaves learners' progress on it as it was."""
    await store.put_problem(make_problem())
    await store.advance_rung("u1", "calculus", "p1", 3)
    await store.put_problem(make_problem(statement="Differentiate x² + 3x + 1."))
    assert (await store.get_progress("u1", "calculus", "p1")).rung == 1


# Course policy


async def test_policy_of_a_course_never_set_is_open(store: Store) -> None:
    """A course without a policy is open, with no window."""
    assert await store.get_policy("calculus") == CoursePolicy(course="calculus")


async def test_policy_round_trips(store: Store) -> None:
    """A policy with its window reads back equal."""
    policy = CoursePolicy(
        course="calculus",
        mode="hint_only",
        hint_only_from=WINDOW_FROM + 0.25,
        hint_only_until=WINDOW_UNTIL,
    )
    await store.put_policy(policy)
    assert await store.get_policy("calculus") == policy


async def test_put_policy_replaces_the_previous_one(store: Store) -> None:
    """A second policy replaces the first, window included."""
    await store.put_policy(
        CoursePolicy(course="calculus", mode="hint_only", hint_only_until=WINDOW_UNTIL)
    )
    await store.put_policy(CoursePolicy(course="calculus", mode="open"))
    assert await store.get_policy("calculus") == CoursePolicy(course="calculus")


async def test_policies_are_per_course(store: Store) -> None:
    """Setting one course's policy leaves the others open."""
    await store.put_policy(CoursePolicy(course="calculus", mode="hint_only"))
    assert (await store.get_policy("algebra")).mode == "open"


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        ((None, None), WINDOW_FROM, True),
        ((WINDOW_FROM, WINDOW_UNTIL), WINDOW_FROM - 1, False),
        ((WINDOW_FROM, WINDOW_UNTIL), WINDOW_FROM, True),
        ((WINDOW_FROM, WINDOW_UNTIL), WINDOW_UNTIL - 1, True),
        ((WINDOW_FROM, WINDOW_UNTIL), WINDOW_UNTIL, False),
        ((WINDOW_FROM, None), WINDOW_UNTIL * 10, True),
        ((WINDOW_FROM, None), WINDOW_FROM - 1, False),
        ((None, WINDOW_UNTIL), 0.0, True),
        ((None, WINDOW_UNTIL), WINDOW_UNTIL, False),
    ],
)
def test_hint_only_at_holds_within_the_window(
    window: tuple[float | None, float | None], now: float, expected: bool
) -> None:
    """A hint_only policy holds from its start up to, not at, its end; a missing side is open."""
    start, end = window
    policy = CoursePolicy(
        course="calculus", mode="hint_only", hint_only_from=start, hint_only_until=end
    )
    assert policy.hint_only_at(now) is expected


def test_open_policy_is_never_hint_only() -> None:
    """An open policy is not hint_only even inside the window it carries."""
    policy = CoursePolicy(
        course="calculus", mode="open", hint_only_from=WINDOW_FROM, hint_only_until=WINDOW_UNTIL
    )
    assert policy.hint_only_at(WINDOW_FROM + 1) is False


# Progress


async def test_progress_before_any_is_zero(store: Store) -> None:
    """A learner who has not started a problem has no rung, no attempt, nothing solved."""
    await store.put_problem(make_problem())
    assert await store.get_progress("u1", "calculus", "p1") == ProblemProgress(
        user_id="u1", course="calculus", problem="p1", rung=0, attempts=0, solved=False
    )


async def test_advance_rung_climbs_to_the_cap_and_stays(store: Store) -> None:
    """Each advance raises the rung by one until max_rung, which it never passes."""
    await store.put_problem(make_problem())
    rungs = [await store.advance_rung("u1", "calculus", "p1", 3) for _ in range(5)]
    assert rungs == [1, 2, 3, 3, 3]
    assert (await store.get_progress("u1", "calculus", "p1")).rung == 3


async def test_advance_rung_with_cap_zero_stays_at_zero(store: Store) -> None:
    """A problem with no hints to give keeps the rung at 0."""
    await store.put_problem(make_problem())
    assert await store.advance_rung("u1", "calculus", "p1", 0) == 0


async def test_advance_rung_with_a_negative_cap_is_refused(store: Store) -> None:
    """A negative max_rung is a programming error: ValueError."""
    await store.put_problem(make_problem())
    with pytest.raises(ValueError):
        await store.advance_rung("u1", "calculus", "p1", -1)


async def test_progress_is_per_learner(store: Store) -> None:
    """One learner's hints and attempts are not another's."""
    await store.put_problem(make_problem())
    await store.advance_rung("u1", "calculus", "p1", 3)
    await store.record_attempt("u1", "calculus", "p1", correct=True)
    other = await store.get_progress("u2", "calculus", "p1")
    assert (other.rung, other.attempts, other.solved) == (0, 0, False)


async def test_record_attempt_counts_and_solved_stays_solved(store: Store) -> None:
    """Attempts count up; a correct one solves the problem and a later wrong one keeps it solved."""
    await store.put_problem(make_problem())
    outcomes = [False, True, False]
    seen = [
        await store.record_attempt("u1", "calculus", "p1", correct=correct) for correct in outcomes
    ]
    assert [(p.attempts, p.solved) for p in seen] == [(1, False), (2, True), (3, True)]


async def test_record_attempt_keeps_the_rung(store: Store) -> None:
    """An attempt leaves the hint rung where it was, and the progress read back matches it."""
    await store.put_problem(make_problem())
    await store.advance_rung("u1", "calculus", "p1", 3)
    before = time.time()
    progress = await store.record_attempt("u1", "calculus", "p1", correct=False)
    assert (progress.rung, progress.attempts) == (1, 1)
    assert progress.updated_at >= before
    assert await store.get_progress("u1", "calculus", "p1") == progress


async def test_progress_on_an_unknown_problem_raises(store: Store) -> None:
    """Hints or attempts on a problem that does not exist raise StoreError."""
    with pytest.raises(StoreError):
        await store.advance_rung("u1", "calculus", "nope", 3)
    with pytest.raises(StoreError):
        await store.record_attempt("u1", "calculus", "nope", correct=True)


async def test_concurrent_advances_each_count(store: Store) -> None:
    """Advances sent at once each raise the rung once, up to the cap: none is lost."""
    await store.put_problem(make_problem())
    rungs = await asyncio.gather(
        *(store.advance_rung("u1", "calculus", "p1", 8) for _ in range(12))
    )
    assert sorted(rungs) == [1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8]


async def test_concurrent_attempts_each_count(store: Store) -> None:
    """Attempts sent at once are all counted, and one correct among them solves the problem."""
    await store.put_problem(make_problem())
    await asyncio.gather(
        *(store.record_attempt("u1", "calculus", "p1", correct=n == 5) for n in range(10))
    )
    progress = await store.get_progress("u1", "calculus", "p1")
    assert (progress.attempts, progress.solved) == (10, True)


@pytest.mark.postgres
async def test_advances_from_several_pods_each_count(postgres_stores: StoreFactory) -> None:
    """Stores on separate pools (pods) advancing one learner's rung at once lose no step."""
    pods = [await postgres_stores.open() for _ in range(3)]
    await pods[0].put_problem(make_problem())
    rungs = await asyncio.gather(
        *(pods[n % 3].advance_rung("u1", "calculus", "p1", 100) for n in range(30))
    )
    assert sorted(rungs) == list(range(1, 31))


async def test_problems_survive_reopen(stores: StoreFactory) -> None:
    """Problems, policies and progress written by one store are read by the next."""
    first = await stores.open()
    policy = CoursePolicy(course="calculus", mode="hint_only", hint_only_from=WINDOW_FROM)
    await first.put_problem(make_problem())
    await first.put_policy(policy)
    progress = await first.record_attempt("u1", "calculus", "p1", correct=True)
    await first.close()
    second = await stores.open()
    assert await second.get_problem("calculus", "p1") == make_problem()
    assert await second.get_policy("calculus") == policy
    assert await second.get_progress("u1", "calculus", "p1") == progress
