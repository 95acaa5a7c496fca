"""End to end on Postgres: the same server, its state in a real PostgreSQL database."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from core.settings import Settings
from store.postgres import PostgresStore
from tests.support.postgres import temporary_database
from tests.support.server import run_server

pytestmark = pytest.mark.postgres


async def test_answers_are_kept_in_postgres_across_restarts(
    make_settings: Callable[..., Settings],
) -> None:
    """Asked on one server process, the session and its answer are served by the next."""
    async with temporary_database() as dsn:
        settings = make_settings(store={"database_url": dsn})
        async with run_server(settings) as first:
            assert isinstance(first.runtime.store, PostgresStore)
            async with await first.client() as client:
                answer = await client.answer(await client.ask("What is a straw man?"))
        async with run_server(settings) as second:
            headers = {"Authorization": f"Bearer {second.token()}"}
            async with httpx.AsyncClient(base_url=second.http_url) as http:
                sessions = (await http.get("/sessions", headers=headers)).json()["sessions"]
                messages = (
                    await http.get(f"/sessions/{answer.session}/messages", headers=headers)
                ).json()["messages"]
            async with await second.client("bob") as bob:
                refused = await bob.answer(await bob.ask("hi", session=answer.session))
    assert [s["id"] for s in sessions] == [answer.session]
    assert [m["role"] for m in messages] == ["learner", "tutor"]
    assert messages[1]["text"] == answer.text
    assert messages[1]["sources"] == answer.sources
    assert refused.errors[0]["code"] == "session_forbidden"


async def test_ready_is_503_when_postgres_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    """Readiness reports the store down when the database goes away under a running pod."""
    async with temporary_database() as dsn:
        settings = make_settings(store={"database_url": dsn, "query_timeout_s": 1.0})
        async with run_server(settings) as srv:
            store = srv.runtime.store
            assert isinstance(store, PostgresStore)
            await store.close()
            async with httpx.AsyncClient(base_url=srv.http_url) as http:
                ready = await http.get("/health/ready")
                sessions = await http.get(
                    "/sessions", headers={"Authorization": f"Bearer {srv.token()}"}
                )
            await store.open()
    assert ready.status_code == 503
    assert ready.json()["checks"]["store"].startswith("down")
    assert sessions.status_code == 503


async def test_the_hint_ladder_and_attempts_persist_in_postgres(
    make_settings: Callable[..., Settings],
) -> None:
    """On Postgres a learner's rung and solved problem survive a restart of the server."""
    from store.store import CoursePolicy, ProblemRecord

    problem = ProblemRecord(
        course="demo",
        id="socrates",
        statement="Is this argument valid: all men are mortal, Socrates is a man, so he is mortal?",
        answer="valid",
        pages=[2],
        updated_at=0.0,
        updated_by="ines",
    )
    async with temporary_database() as dsn:
        settings = make_settings(store={"database_url": dsn})
        async with run_server(settings) as first:
            await first.runtime.store.put_problem(problem)
            await first.runtime.store.put_policy(CoursePolicy(course="demo", mode="hint_only"))
            async with await first.client() as client:
                one = await client.answer(await client.ask("Hint?", problem="socrates"))
                two = await client.answer(await client.ask("Hint?", problem="socrates"))
                solved = await client.attempt("socrates", "It is valid.")
        async with run_server(settings) as second, await second.client() as client:
            ask = await client.ask("Explain the solution", problem="socrates")
            start = await client.wait_for(lambda f: f["type"] == "stream.start")
            await client.answer(ask)
    assert (one.end["hint_level"], two.end["hint_level"]) == (1, 2)
    assert one.end["hint_only"] is True
    assert solved["correct"] is True
    assert start["mode"] == "explain"
