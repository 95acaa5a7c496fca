"""The OpenAI provider against a real OpenAI-compatible HTTP server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from core.errors import CircuitOpen, LLMRejected, LLMTimeout, LLMUnavailable
from core.settings import LLMSettings
from tests.support.clock import FakeClock
from tests.support.fake_openai import FakeOpenAI, Reply, run_fake_openai
from tutor.breaker import CircuitBreaker
from tutor.llm import Prompt
from tutor.llm_openai import CONTINUE_INSTRUCTION, OpenAIProvider

MakeProvider = Callable[..., OpenAIProvider]

# Short deadlines keep the suite fast; the fake's delays are set well past them.
FAST: dict[str, Any] = {
    "provider": "openai",
    "api_key": "test-key",
    "model": "tutor-model",
    "temperature": 0.2,
    "max_output_tokens": 123,
    "connect_timeout_s": 1.0,
    "first_token_timeout_s": 0.3,
    "token_timeout_s": 0.3,
    "connect_retries": 2,
    "retry_backoff_s": 0.01,
    "breaker_failures": 100,
    "breaker_reset_s": 30.0,
}
TOO_SLOW_S = 2.0
SYSTEM = "You are a patient tutor."
QUESTION = "What is a derivative?"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with run_fake_openai() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_provider(fake: FakeOpenAI, clock: FakeClock) -> AsyncIterator[MakeProvider]:
    """Providers pointed at the fake server, closed after the test."""
    providers: list[OpenAIProvider] = []

    def make(**overrides: Any) -> OpenAIProvider:
        settings = LLMSettings(**{**FAST, "base_url": fake.base_url, **overrides})
        provider = OpenAIProvider(settings, clock=clock)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.aclose()


def prompt(continuation: str = "") -> Prompt:
    return Prompt(
        question=QUESTION,
        mode="explain",
        course="calculus",
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTION},
        ],
        continuation=continuation,
    )


async def collect(provider: OpenAIProvider, into: list[str] | None = None) -> list[str]:
    tokens = [] if into is None else into
    async for token in provider.stream(prompt()):
        tokens.append(token)
    return tokens


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_tokens_stream_in_order(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    """Content tokens arrive in order; role, final and empty chunks are skipped."""
    fake.script.append(Reply.answer(["The ", "slope", " of ", "a curve."]))
    assert await collect(make_provider()) == ["The ", "slope", " of ", "a curve."]


async def test_request_carries_model_messages_and_stream(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """The request names the model, sends the messages and asks for a stream."""
    await collect(make_provider())
    [body] = fake.requests
    assert body["model"] == "tutor-model"
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 123


async def test_continuation_adds_assistant_and_user_messages(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A continuation is sent as the assistant's partial answer plus a request to go on."""
    async for _ in make_provider().stream(prompt(continuation="A derivative is")):
        pass
    messages = fake.requests[0]["messages"]
    assert messages[-2:] == [
        {"role": "assistant", "content": "A derivative is"},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    assert messages[:2] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]


async def test_answer_without_content_ends_cleanly(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A stream that finishes without any content yields nothing and raises nothing."""
    fake.script.append(Reply.answer([]))
    assert await collect(make_provider()) == []


async def test_empty_choices_chunk_is_skipped(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A usage chunk with no choices yields nothing and does not fail."""
    fake.script.append(Reply.answer(["only"], usage_chunk=True))
    assert await collect(make_provider()) == ["only"]


async def test_server_error_before_first_token_is_retried(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """An HTTP 500 before any token is retried, and the retry's answer is streamed."""
    fake.script.extend([Reply.error(500), Reply.answer(["ok"])])
    assert await collect(make_provider()) == ["ok"]
    assert len(fake.requests) == 2


async def test_retries_stop_at_connect_retries(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A persistent 503 is tried 1 + connect_retries times, then raises LLMUnavailable."""
    fake.default = Reply.error(503)
    with pytest.raises(LLMUnavailable):
        await collect(make_provider(connect_retries=2))
    assert len(fake.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_client_error_is_rejected_without_retry(
    fake: FakeOpenAI, make_provider: MakeProvider, status: int
) -> None:
    """HTTP 4xx other than 429 raises LLMRejected after a single request."""
    fake.default = Reply.error(status)
    with pytest.raises(LLMRejected, match=str(status)):
        await collect(make_provider())
    assert len(fake.requests) == 1


async def test_rejection_is_not_a_breaker_failure(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A refused request is the request's fault: the breaker stays closed."""
    fake.default = Reply.error(400)
    provider = make_provider(breaker_failures=1)
    with pytest.raises(LLMRejected):
        await collect(provider)
    assert provider.breaker.state == "closed"
    assert provider.breaker.failures == 0


async def test_rate_limit_is_unavailable_after_retries(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """HTTP 429 is retried like a server error, then raises LLMUnavailable."""
    fake.default = Reply.error(429)
    with pytest.raises(LLMUnavailable) as raised:
        await collect(make_provider(connect_retries=1))
    assert type(raised.value) is LLMUnavailable
    assert len(fake.requests) == 2


async def test_stall_mid_stream_times_out_without_retry(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A stall after tokens were yielded raises LLMTimeout and is never retried."""
    fake.default = Reply.stall(["a", "b", "c"], after=2)
    tokens: list[str] = []
    with pytest.raises(LLMTimeout):
        await collect(make_provider(), into=tokens)
    assert tokens == ["a", "b"]
    assert len(fake.requests) == 1


async def test_stall_mid_stream_closes_upstream(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """After a stall times out, the HTTP connection to the endpoint is closed."""
    fake.default = Reply.stall(after=1)
    with pytest.raises(LLMTimeout):
        await collect(make_provider())
    await fake.wait_for_disconnects(1)


async def test_slow_first_token_times_out_and_is_retried(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """No first token within first_token_timeout_s is retried, then raises LLMTimeout."""
    fake.default = Reply.slow_start(TOO_SLOW_S)
    with pytest.raises(LLMTimeout):
        await collect(make_provider(connect_retries=1))
    assert len(fake.requests) == 2


async def test_slow_response_headers_time_out_and_are_retried(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """The first-token deadline also covers waiting for the response headers."""
    fake.default = Reply.slow_start(TOO_SLOW_S, before_headers=True)
    with pytest.raises(LLMTimeout):
        await collect(make_provider(connect_retries=1))
    assert len(fake.requests) == 2


async def test_slow_first_token_then_fast_retry_succeeds(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A first-token timeout is invisible when the retry answers in time."""
    fake.script.extend([Reply.slow_start(TOO_SLOW_S), Reply.answer(["fast"])])
    assert await collect(make_provider()) == ["fast"]


async def test_dropped_connection_mid_stream_is_unavailable(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A connection cut after tokens were yielded raises LLMUnavailable, not retried."""
    fake.default = Reply.drop(["a", "b", "c"], after=2)
    tokens: list[str] = []
    with pytest.raises(LLMUnavailable) as raised:
        await collect(make_provider(), into=tokens)
    assert type(raised.value) is LLMUnavailable
    assert tokens == ["a", "b"]
    assert len(fake.requests) == 1


async def test_dropped_connection_before_first_token_is_retried(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """A connection cut right after the headers is retried like a refused one."""
    fake.script.extend([Reply.drop(after=0), Reply.answer(["again"])])
    assert await collect(make_provider()) == ["again"]
    assert len(fake.requests) == 2


async def test_task_cancel_closes_upstream(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    """Cancelling the consuming task closes the HTTP stream and propagates CancelledError."""
    fake.default = Reply.stall(after=1)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in make_provider().stream(prompt()):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_for_disconnects(1)


async def test_cancel_before_first_token_closes_upstream(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """Cancelling while waiting for the first token closes the HTTP stream too."""
    fake.default = Reply.slow_start(TOO_SLOW_S)
    provider = make_provider(first_token_timeout_s=5.0)
    task = asyncio.create_task(collect(provider))
    await fake.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_for_disconnects(1)


async def test_aclose_closes_upstream(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    """Closing the generator mid-answer closes the HTTP stream."""
    fake.default = Reply.stall(["a", "b"], after=1)
    tokens = make_provider().stream(prompt())
    assert await anext(tokens) == "a"
    await tokens.aclose()
    await fake.wait_for_disconnects(1)


async def test_breaker_opens_and_fails_fast(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    """After breaker_failures failed requests, calls fail fast without reaching the server."""
    fake.default = Reply.error(500)
    provider = make_provider(breaker_failures=2, connect_retries=0)
    for _ in range(2):
        with pytest.raises(LLMUnavailable):
            await collect(provider)
    with pytest.raises(CircuitOpen):
        await collect(provider)
    assert provider.breaker.state == "open"
    assert len(fake.requests) == 2


async def test_breaker_counts_every_failed_attempt(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    """Retries count as failures: once they open the breaker, retrying stops."""
    fake.default = Reply.error(503)
    provider = make_provider(breaker_failures=2, connect_retries=5)
    with pytest.raises(LLMUnavailable) as raised:
        await collect(provider)
    assert type(raised.value) is LLMUnavailable
    assert provider.breaker.state == "open"
    assert len(fake.requests) == 2


async def test_half_open_probe_success_closes_breaker(
    fake: FakeOpenAI, make_provider: MakeProvider, clock: FakeClock
) -> None:
    """After breaker_reset_s one probe reaches the server, and its success closes the breaker."""
    fake.script.extend([Reply.error(500), Reply.answer(["back"])])
    provider = make_provider(breaker_failures=1, connect_retries=0)
    with pytest.raises(LLMUnavailable):
        await collect(provider)
    clock.advance(FAST["breaker_reset_s"])
    assert await collect(provider) == ["back"]
    assert provider.breaker.state == "closed"
    assert len(fake.requests) == 2


async def test_half_open_probe_failure_reopens_breaker(
    fake: FakeOpenAI, make_provider: MakeProvider, clock: FakeClock
) -> None:
    """A failed probe reopens the breaker, and the next call fails fast again."""
    fake.default = Reply.error(500)
    provider = make_provider(breaker_failures=1, connect_retries=0)
    with pytest.raises(LLMUnavailable):
        await collect(provider)
    clock.advance(FAST["breaker_reset_s"])
    with pytest.raises(LLMUnavailable):
        await collect(provider)
    with pytest.raises(CircuitOpen):
        await collect(provider)
    assert len(fake.requests) == 2


async def test_half_open_fails_fast_while_probe_runs(
    fake: FakeOpenAI, make_provider: MakeProvider, clock: FakeClock
) -> None:
    """While the probe waits for its first token, other calls fail fast."""
    fake.script.extend([Reply.error(500), Reply.slow_start(0.2, ["probe"])])
    provider = make_provider(breaker_failures=1, connect_retries=0, first_token_timeout_s=5.0)
    with pytest.raises(LLMUnavailable):
        await collect(provider)
    clock.advance(FAST["breaker_reset_s"])
    probe = asyncio.create_task(collect(provider))
    await fake.wait_for_requests(2)
    with pytest.raises(CircuitOpen):
        await collect(provider)
    assert await probe == ["probe"]
    assert len(fake.requests) == 2


async def test_first_token_records_success(
    fake: FakeOpenAI, make_provider: MakeProvider, clock: FakeClock
) -> None:
    """The probe closes the breaker at its first token, before the answer ends."""
    fake.script.extend([Reply.error(500), Reply.stall(["a", "b"], after=1)])
    provider = make_provider(breaker_failures=1, connect_retries=0, token_timeout_s=5.0)
    with pytest.raises(LLMUnavailable):
        await collect(provider)
    clock.advance(FAST["breaker_reset_s"])
    tokens = provider.stream(prompt())
    assert await anext(tokens) == "a"
    assert provider.breaker.state == "closed"
    await tokens.aclose()


async def test_cancelled_probe_frees_the_probe_slot(
    fake: FakeOpenAI, make_provider: MakeProvider, clock: FakeClock
) -> None:
    """A probe cancelled before its first token lets the next call probe."""
    fake.script.extend(
        [Reply.error(500), Reply.slow_start(TOO_SLOW_S), Reply.answer(["second probe"])]
    )
    provider = make_provider(breaker_failures=1, connect_retries=0, first_token_timeout_s=5.0)
    with pytest.raises(LLMUnavailable):
        await collect(provider)
    clock.advance(FAST["breaker_reset_s"])
    probe = asyncio.create_task(collect(provider))
    await fake.wait_for_requests(2)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert await collect(provider) == ["second probe"]


async def test_connection_refused_is_unavailable() -> None:
    """An endpoint nobody listens on raises LLMUnavailable after the retries."""
    settings = LLMSettings(**{**FAST, "base_url": f"http://127.0.0.1:{closed_port()}/v1"})
    provider = OpenAIProvider(settings)
    try:
        with pytest.raises(LLMUnavailable) as raised:
            await collect(provider)
        assert type(raised.value) is LLMUnavailable
        assert provider.breaker.failures == 1 + FAST["connect_retries"]
    finally:
        await provider.aclose()


async def test_empty_api_key_uses_placeholder(fake: FakeOpenAI) -> None:
    """A local server needs no key: an empty one still lets the provider start and answer."""
    settings = LLMSettings(**{**FAST, "api_key": "", "base_url": fake.base_url})
    provider = OpenAIProvider(settings)
    try:
        assert await collect(provider) == list(Reply().tokens)
    finally:
        await provider.aclose()


async def test_name_model_and_breaker_settings() -> None:
    """The provider reports its name and model, and its breaker follows the settings."""
    provider = OpenAIProvider(LLMSettings(**{**FAST, "breaker_failures": 7}))
    try:
        assert provider.name == "openai"
        assert provider.model == "tutor-model"
        assert isinstance(provider.breaker, CircuitBreaker)
        for _ in range(6):
            provider.breaker.record_failure()
        assert provider.breaker.failures == 6
        provider.breaker.record_failure()
        assert provider.breaker.state == "open"
    finally:
        await provider.aclose()
