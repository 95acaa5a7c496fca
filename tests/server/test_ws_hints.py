"""Hints that hold whatever the model writes: the ladder, the guard, hint_only and attempts.

A real server on port 0; the model is the scripted OpenAI-compatible server, told to
give the answer away, or the offline tutor.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from core.settings import Settings
from store.store import CoursePolicy, ProblemRecord
from tests.support.fake_openai import FakeOpenAI, Reply, run_fake_openai
from tests.support.server import RunningServer, run_server

STATEMENT = "Is this argument valid: all men are mortal, Socrates is a man, so Socrates is mortal?"
PROBLEM = ProblemRecord(
    course="demo",
    id="socrates",
    statement=STATEMENT,
    answer="valid",
    accept=["yes"],
    pages=[2],
    updated_at=0.0,
    updated_by="ines",
)
LEAKY = [
    "Think about what the premises say. ",
    "This argument is valid. ",
    "Which premise is about Socrates?",
]
# The verdict in every form the guard must catch: plain, spaced out, spelled backwards.
PERSISTENT = ["It is valid. ", "Yes: v-a-l-i-d. ", "Read it backwards: dilav. "] * 6


def gives_it_away(text: str) -> bool:
    """Whether ``text`` gives this problem's verdict in any of the ways the scripted model does.

    The course's definition ("an argument is valid when…") is not the verdict on this one.
    """
    flat = text.lower()
    return bool(
        re.search(r"\b(it|this argument|the argument) is valid\b|v-a-l-i-d|dilav|\byes\b", flat)
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with run_fake_openai(default=Reply.answer(LEAKY), model="tutor-model") as server:
        yield server


@pytest.fixture
def llm_settings(
    make_settings: Callable[..., Settings], fake: FakeOpenAI
) -> Callable[..., Settings]:
    def make(ws: dict[str, Any] | None = None, **llm: Any) -> Settings:
        return make_settings(
            llm={
                "provider": "openai",
                "base_url": fake.base_url,
                "api_key": "test-key",
                "model": "tutor-model",
                "first_token_timeout_s": 2,
                "token_timeout_s": 2,
                "connect_retries": 0,
                **llm,
            },
            ws=ws or {"ask_burst": 50},
        )

    return make


@pytest.fixture
async def server(llm_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    async with run_server(llm_settings()) as running:
        await running.runtime.store.put_problem(PROBLEM)
        yield running


async def test_a_leaking_sentence_is_withheld_and_replaced(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    """The model states the verdict; the learner gets the other sentences and a marker."""
    async with await server.client() as client:
        ask = await client.ask("Just tell me the answer", mode="hint", problem="socrates")
        start = await client.wait_for(lambda f: f["type"] == "stream.start")
        answer = await client.answer(ask)
    assert start["hint_level"] == 1
    assert start["problem"] == "socrates"
    assert answer.end["hint_level"] == 1
    assert not gives_it_away(answer.text)
    assert "premises" in answer.text and "Socrates" in answer.text
    assert len(answer.end["withheld"]) == 1
    stored = (await server.runtime.store.list_messages(answer.session))[-1]
    assert stored.text == answer.text
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(server.metrics_url)).text
    assert re.search(r'hint_guard_withheld_total\{reason="[a-z_]+"\} 1\.0', metrics)


async def test_a_model_that_keeps_leaking_is_stopped(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    """Repeated leaks stop the model call; nothing of the verdict reaches the learner."""
    fake.default = Reply.answer(PERSISTENT, token_delay_s=0.01)
    async with await server.client() as client:
        answer = await client.answer(
            await client.ask("So what is it?", mode="hint", problem="socrates")
        )
        await fake.wait_for_disconnects(1)
    assert answer.reason == "stop"
    assert not gives_it_away(answer.text)
    assert 1 <= len(answer.end["withheld"]) < len(PERSISTENT)


async def test_the_ladder_climbs_per_learner_and_problem(server: RunningServer) -> None:
    """Hints climb a rung each, to 3; an attempt opens rung 4; another learner starts at 1."""
    levels = []
    async with await server.client() as client:
        for turn in range(6):
            if turn == 4:
                await client.attempt("socrates", "invalid")
            answer = await client.answer(
                await client.ask("A hint?", mode="hint", problem="socrates")
            )
            levels.append(answer.end["hint_level"])
    async with await server.client("bob") as other:
        first = await other.answer(await other.ask("A hint?", mode="hint", problem="socrates"))
    assert levels == [1, 2, 3, 3, 4, 4]
    assert first.end["hint_level"] == 1


async def test_the_rung_rule_reaches_the_model(server: RunningServer, fake: FakeOpenAI) -> None:
    """The model is told the rung's rule and the problem's statement, never its answer key."""
    async with await server.client() as client:
        await client.answer(await client.ask("Help", mode="hint", problem="socrates"))
    messages = fake.requests[-1]["messages"]
    system = messages[0]["content"]
    assert "hint number 1" in system
    assert any(STATEMENT in m["content"] for m in messages[1:])
    assert not any("accept" in m["content"] for m in messages)


async def test_hint_only_course_answers_explain_asks_as_hints(server: RunningServer) -> None:
    """Under a hint_only policy an explain ask becomes a hint and says so."""
    await server.runtime.store.put_policy(CoursePolicy(course="demo", mode="hint_only"))
    async with await server.client() as client:
        ask = await client.ask("Is it valid?", problem="socrates")
        start = await client.wait_for(lambda f: f["type"] == "stream.start")
        answer = await client.answer(ask)
    assert start["mode"] == "hint"
    assert start["hint_only"] is True
    assert answer.end["hint_only"] is True
    assert not gives_it_away(answer.text)


async def test_a_correct_attempt_unlocks_the_explanation(server: RunningServer) -> None:
    """Wrong attempt: not yet; right attempt: correct; then explain is allowed under hint_only."""
    await server.runtime.store.put_policy(
        CoursePolicy(course="demo", mode="hint_only", hint_only_until=time.time() + 3600)
    )
    async with await server.client() as client:
        wrong = await client.attempt("socrates", "It is invalid")
        right = await client.attempt("socrates", "Yes, it's valid.")
        ask = await client.ask("Explain it please", problem="socrates")
        start = await client.wait_for(lambda f: f["type"] == "stream.start")
        await client.answer(ask)
    assert (wrong["type"], wrong["correct"]) == ("feedback", False)
    assert "valid" not in wrong["message"].lower()
    assert "page 2" in wrong["message"]
    assert (right["correct"], right["problem"]) == (True, "socrates")
    assert start["mode"] == "explain"
    assert "hint_only" not in start
    progress = await server.runtime.store.get_progress("alice", "demo", "socrates")
    assert (progress.attempts, progress.solved) == (2, True)


async def test_unknown_problem_is_a_typed_error(server: RunningServer) -> None:
    """An ask or an attempt naming a problem the course lacks gets problem_unknown."""
    async with await server.client() as client:
        ask = await client.ask("Hint?", mode="hint", problem="nope")
        asked = await client.wait_for(lambda f: f["type"] == "error" and f["ref"] == ask)
        attempted = await client.attempt("nope", "valid")
    assert asked["code"] == attempted["code"] == "problem_unknown"


async def test_attempt_on_another_course_is_refused(server: RunningServer) -> None:
    """An attempt at a course the token does not grant is course_forbidden."""
    async with await server.client() as client:
        refused = await client.attempt("socrates", "valid", course="physics")
    assert refused["code"] == "course_forbidden"


async def test_a_free_hint_is_guarded_by_a_private_reference_answer(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    """Without a problem, the model's short private answer is what the hint must not say."""
    fake.script.extend(
        [
            Reply.answer(["Correlation does not prove causation."]),
            Reply.answer(
                ["Ask what else could explain it. ", "Correlation does not prove causation. "]
            ),
        ]
    )
    async with await server.client() as client:
        answer = await client.answer(
            await client.ask("Does ice cream cause drowning?", mode="hint")
        )
    reference, hint = fake.requests[-2], fake.requests[-1]
    assert reference["max_tokens"] <= 60
    assert "Ask what else could explain it." in answer.text
    assert "does not prove causation" not in answer.text
    assert len(answer.end["withheld"]) == 1
    stored = await server.runtime.store.list_messages(answer.session)
    assert all("does not prove" not in m.text for m in stored)
    assert hint["messages"][0]["content"] != reference["messages"][0]["content"]


async def test_offline_tutor_walks_the_ladder_without_the_answer(
    make_settings: Callable[..., Settings],
) -> None:
    """The offline tutor's hints climb the rungs from the course text and never state the key."""
    async with run_server(make_settings()) as srv:
        await srv.runtime.store.put_problem(PROBLEM)
        texts = []
        async with await srv.client() as client:
            for turn in range(4):
                if turn == 3:
                    await client.attempt("socrates", "I think it is not")
                answer = await client.answer(
                    await client.ask("Give me a hint", mode="hint", problem="socrates")
                )
                texts.append(answer.text)
                assert answer.end["model"] == "offline"
                assert answer.end["hint_level"] == turn + 1
    assert len(set(texts)) == 4
    assert "page 2" in texts[0].lower()
    assert not any(gives_it_away(text) for text in texts)


async def test_a_hint_about_a_problem_is_grounded_on_its_pages(server: RunningServer) -> None:
    """Whatever the push says, a problem's hint draws on the passages about the problem."""
    async with await server.client() as client:
        answer = await client.answer(
            await client.ask("Just tell me the answer.", mode="hint", problem="socrates")
        )
    assert 2 in [source["page"] for source in answer.sources]


async def test_attempts_share_the_ask_rate_limit(llm_settings: Callable[..., Settings]) -> None:
    """Guessing a key attempt after attempt is rate limited like asking."""
    settings = llm_settings(ws={"ask_burst": 3, "ask_rate_per_min": 1})
    async with run_server(settings) as srv:
        await srv.runtime.store.put_problem(PROBLEM)
        async with await srv.client() as client:
            replies = [await client.attempt("socrates", guess) for guess in ("a", "b", "c", "d")]
    assert [r["type"] for r in replies] == ["feedback", "feedback", "feedback", "error"]
    assert replies[-1]["code"] == "rate_limited"
    assert replies[-1]["retry_after_ms"] > 0
