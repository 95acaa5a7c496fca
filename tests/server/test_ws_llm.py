"""End to end with the OpenAI-compatible provider: the real openai client against a test server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from core.settings import Settings
from tests.support.fake_openai import FakeOpenAI, Reply, run_fake_openai
from tests.support.server import RunningServer, run_server

WORDS = [
    "Validity ",
    "is ",
    "about ",
    "form",
    ": ",
    "true ",
    "premises ",
    "force ",
    "a ",
    "true ",
    "conclusion",
    ".",
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with run_fake_openai(default=Reply.answer(WORDS), model="tutor-model") as server:
        yield server


@pytest.fixture
def llm_settings(
    make_settings: Callable[..., Settings], fake: FakeOpenAI
) -> Callable[..., Settings]:
    def make(**llm: Any) -> Settings:
        return make_settings(
            llm={
                "provider": "openai",
                "base_url": fake.base_url,
                "api_key": "test-key",
                "model": "tutor-model",
                "first_token_timeout_s": 0.5,
                "token_timeout_s": 0.5,
                "connect_retries": 1,
                "retry_backoff_s": 0.01,
                **llm,
            }
        )

    return make


@pytest.fixture
async def server(llm_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    async with run_server(llm_settings()) as running:
        yield running


async def test_llm_answer_streams_with_model_and_sources(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    """The LLM's tokens arrive as deltas; stream.end names the model and the passages sent."""
    async with await server.client() as client:
        answer = await client.answer(await client.ask("What makes an argument valid?"))
    assert answer.text == "".join(WORDS)
    assert answer.reason == "stop"
    assert answer.end["model"] == "tutor-model"
    assert answer.end["fallback"] is False
    assert answer.sources
    request = fake.requests[-1]
    assert request["model"] == "tutor-model"
    assert request["stream"] is True
    material = request["messages"][-2]
    assert material["role"] == "user"
    assert "Deductive validity" in material["content"]
    # A question whose answer may be shared goes to the model as its cache key holds it.
    assert request["messages"][-1] == {"role": "user", "content": "what makes an argument valid"}


async def test_history_goes_to_the_llm(server: RunningServer, fake: FakeOpenAI) -> None:
    """A follow-up in a session sends the earlier question and answer."""
    async with await server.client() as client:
        first = await client.answer(await client.ask("What is validity?"))
        await client.answer(await client.ask("Give an example", session=first.session))
    roles = [m["role"] for m in fake.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user", "user"]
    assert fake.requests[-1]["messages"][2]["content"] == first.text


async def test_hint_mode_prompt_forbids_the_answer(server: RunningServer, fake: FakeOpenAI) -> None:
    """Hint mode uses the Socratic prompt that withholds the final answer."""
    async with await server.client() as client:
        await client.answer(await client.ask("Is this argument valid?", mode="hint"))
    assert "Do NOT state the final answer" in fake.requests[-1]["messages"][0]["content"]


async def test_llm_down_falls_back_to_offline_answer(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    """When the LLM fails before any token, the learner gets an error and a labelled fallback."""
    fake.default = Reply.error(503)
    async with await server.client() as client:
        answer = await client.answer(await client.ask("What makes an argument valid?"))
    assert answer.errors[0]["code"] == "llm_unavailable"
    assert answer.reason == "stop"
    assert answer.end["fallback"] is True
    assert answer.end["model"] == "offline"
    assert "Deductive validity" in answer.text
    assert len(fake.requests) == 2  # one retry, then fallback


async def test_no_passages_and_llm_down_ends_with_error(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    """With nothing to fall back on, the stream ends with reason error and is stored as such."""
    fake.default = Reply.error(500)
    async with await server.client() as client:
        answer = await client.answer(await client.ask("zzz qqq xyzzy"))
    assert answer.errors[0]["code"] == "llm_unavailable"
    assert answer.reason == "error"
    stored = (await server.runtime.store.list_messages(answer.session))[-1]
    assert (stored.role, stored.reason) == ("tutor", "error")


async def test_stall_mid_answer_ends_with_error(server: RunningServer, fake: FakeOpenAI) -> None:
    """A stall after some tokens ends the stream with an error; the partial text is kept."""
    fake.default = Reply.stall(WORDS, after=3)
    async with await server.client() as client:
        answer = await client.answer(await client.ask("What makes an argument valid?"))
    assert answer.reason == "error"
    assert answer.text == "".join(WORDS[:3])
    assert answer.errors[0]["code"] == "llm_unavailable"
    assert len(fake.requests) == 1  # never retried once tokens were sent
    stored = (await server.runtime.store.list_messages(answer.session))[-1]
    assert (stored.text, stored.reason) == (answer.text, "error")


async def test_dropped_connection_mid_answer(server: RunningServer, fake: FakeOpenAI) -> None:
    """An LLM connection dropped mid-stream ends the answer with reason error."""
    fake.default = Reply.drop(WORDS, after=4)
    async with await server.client() as client:
        answer = await client.answer(await client.ask("What makes an argument valid?"))
    assert answer.reason == "error"
    assert answer.text == "".join(WORDS[:4])


async def test_cancel_closes_the_upstream_stream(server: RunningServer, fake: FakeOpenAI) -> None:
    """cancel ends the stream and the LLM server sees its HTTP stream closed."""
    fake.default = Reply.answer(WORDS * 50, token_delay_s=0.02)
    async with await server.client() as client:
        ask = await client.ask("What makes an argument valid?")
        start = await client.wait_for(lambda f: f["type"] == "stream.start")
        await client.wait_for(lambda f: f["type"] == "delta")
        await client.send({"type": "cancel", "stream": start["stream"]})
        answer = await client.answer(ask, after=1)
        await fake.wait_for_disconnects(1)
    assert answer.reason == "cancelled"
    assert fake.disconnects == 1


async def test_breaker_open_fails_fast_to_fallback(
    llm_settings: Callable[..., Settings], fake: FakeOpenAI
) -> None:
    """After repeated failures the breaker opens: no more LLM calls, answers fall back at once."""
    fake.default = Reply.error(500)
    settings = llm_settings(connect_retries=0, breaker_failures=2, breaker_reset_s=60)
    async with run_server(settings) as srv, await srv.client() as client:
        for _ in range(2):
            await client.answer(await client.ask("What makes an argument valid?"))
        calls = len(fake.requests)
        answer = await client.answer(await client.ask("What makes an argument valid?"))
    assert calls == 2
    assert len(fake.requests) == 2
    assert answer.end["fallback"] is True
    assert "failing" in answer.errors[0]["message"]
