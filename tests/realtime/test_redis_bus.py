"""Pods sharing a real Redis: fan-out, resume anywhere, cross-pod cancel, shared limits."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from core import keys
from core.settings import Settings, parse_sentinels
from devtools.cluster import RedisNode
from realtime.redis_bus import RedisBus
from tests.support.server import RunningServer, run_server

Pods = Callable[..., AsyncIterator[list[RunningServer]]]


@pytest.fixture
def pod_settings(
    make_settings: Callable[..., Settings], redis_node: RedisNode
) -> Callable[..., Settings]:
    def make(name: str, **overrides: Any) -> Settings:
        groups: dict[str, Any] = {
            "redis": {"url": redis_node.url, "lease_s": 0.6, "socket_timeout_s": 1.0},
            "llm": {"offline_pace_ms": 2},
            "ws": {"ask_burst": 100},
        }
        for key, value in overrides.items():
            groups[key] = {**groups.get(key, {}), **value} if isinstance(value, dict) else value
        return make_settings(pod_name=name, **groups)

    return make


@pytest.fixture
async def pods(pod_settings: Callable[..., Settings]) -> AsyncIterator[list[RunningServer]]:
    """Two pods on one Redis (and one SQLite file, one secret)."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(run_server(pod_settings(n))) for n in "AB"]


async def test_pods_use_the_redis_bus(pods: list[RunningServer]) -> None:
    """With REDIS_URL set, each pod runs the Redis bus."""
    assert all(isinstance(pod.runtime.bus, RedisBus) for pod in pods)


async def test_answer_reaches_tab_on_other_pod(pods: list[RunningServer]) -> None:
    """A question asked on pod A streams, whole and in order, to a tab on pod B."""
    a, b = pods
    async with await a.client() as tab_a, await b.client() as tab_b:
        first = await tab_a.answer(await tab_a.ask("What is a fallacy?"))
        await tab_b.send({"type": "open", "id": "o", "session": first.session})
        opened = await tab_b.wait_for(lambda f: f["type"] == "session")
        ask = await tab_a.ask("And a false dilemma?", session=first.session)
        on_a = await tab_a.answer(ask)
        on_b = await tab_b.answer(ask)
    assert [m["role"] for m in opened["messages"]] == ["learner", "tutor"]
    assert on_b.text == on_a.text
    assert on_b.seqs == on_a.seqs
    assert on_b.end == on_a.end


async def test_presence_lists_connections_on_both_pods(pods: list[RunningServer]) -> None:
    """open reports every live connection of the session, on every pod."""
    a, b = pods
    async with await a.client() as tab_a, await b.client() as tab_b:
        first = await tab_a.answer(await tab_a.ask("What is a fallacy?"))
        await tab_b.send({"type": "open", "id": "o", "session": first.session})
        opened = await tab_b.wait_for(lambda f: f["type"] == "session")
    pods_seen = {entry["pod"] for entry in opened["presence"]}
    assert pods_seen == {"A", "B"}


async def test_resume_on_other_pod_at_random_points(pods: list[RunningServer]) -> None:
    """Dropped at a random seq on one pod, resumed on another: no gap, no repeat, many times."""
    rng = random.Random(7)
    for round_ in range(12):
        first, second = pods if round_ % 2 == 0 else pods[::-1]
        client = await first.client()
        # A new wording each round: a cached answer would arrive in one delta.
        ask = await client.ask(f"Explain correlation and causation, take {round_}")
        start = await client.wait_for(lambda f: f["type"] == "stream.start")
        # A busy pod coalesces tokens into fewer deltas, and a short answer
        # may end before the drawn seq: then the cut falls after its last delta.
        wanted = rng.randint(1, 12)
        cut, seen = 0, ""
        while cut < wanted:
            frame = await client.wait_for(lambda f: f["type"] in ("delta", "stream.end"))
            if frame["type"] == "stream.end":
                break
            assert frame["seq"] == cut + 1
            cut, seen = frame["seq"], seen + frame["text"]
        await client.close()
        async with await second.client() as again:
            await again.send({"type": "resume", "stream": start["stream"], "after": cut})
            rest = await again.answer(ask, stream=start["stream"], after=cut)
        stored = (await second.runtime.store.list_messages(start["session"]))[-1]
        assert rest.reason == "stop"
        assert seen + rest.text == stored.text


async def test_resume_of_ended_stream_on_other_pod(pods: list[RunningServer]) -> None:
    """An ended stream resumed on another pod replays the rest and its stream.end."""
    a, b = pods
    async with await a.client() as client:
        answer = await client.answer(await client.ask("What is a straw man?"))
    async with await b.client() as other:
        await other.send({"type": "resume", "stream": answer.stream, "after": 3})
        rest = await other.answer(answer.ask, stream=answer.stream, after=3)
    assert rest.seqs == answer.seqs[3:]
    assert rest.end == answer.end


@pytest.mark.parametrize("after", [10**9, 2**62])
async def test_resume_after_beyond_the_end(pods: list[RunningServer], after: int) -> None:
    """A forged, huge after replays nothing but the stream.end."""
    a, b = pods
    async with await a.client() as client:
        answer = await client.answer(await client.ask("What is a straw man?"))
    async with await b.client() as other:
        await other.send({"type": "resume", "stream": answer.stream, "after": after})
        end = await other.recv(5)
    assert end == answer.end


async def test_resume_other_users_stream_on_other_pod(pods: list[RunningServer]) -> None:
    """Bob cannot resume Alice's stream through another pod."""
    a, b = pods
    async with await a.client("alice") as alice:
        answer = await alice.answer(await alice.ask("What is a straw man?"))
    async with await b.client("bob") as bob:
        await bob.send({"type": "resume", "id": "r", "stream": answer.stream, "after": 0})
        error = await bob.recv(5)
    assert (error["code"], error["ref"]) == ("stream_unknown", "r")


async def test_cancel_from_other_pod(pods: list[RunningServer]) -> None:
    """cancel sent to pod B stops the answer generating on pod A."""
    a, b = pods
    async with await a.client() as tab_a, await b.client() as tab_b:
        ask = await tab_a.ask("Explain correlation and causation")
        start = await tab_a.wait_for(lambda f: f["type"] == "stream.start")
        await tab_a.wait_for(lambda f: f["type"] == "delta")
        await tab_b.send({"type": "cancel", "id": "c", "stream": start["stream"]})
        answer = await tab_a.answer(ask, after=1)
    assert answer.reason == "cancelled"
    assert a.runtime.tutor.running == 0


async def test_rate_limit_is_shared_by_pods(pod_settings: Callable[..., Settings]) -> None:
    """The per-user ask bucket lives in Redis: asks on two pods draw from one bucket."""
    limits = {"ask_burst": 2, "ask_rate_per_min": 1}
    async with (
        run_server(pod_settings("A", ws=limits)) as a,
        run_server(pod_settings("B", ws=limits)) as b,
    ):
        async with await a.client() as on_a, await b.client() as on_b:
            first = await on_a.answer(await on_a.ask("What is a premise?"))
            second = await on_b.answer(await on_b.ask("What is a conclusion?"))
            third = await on_b.answer(await on_b.ask("What is validity?"))
    assert first.reason == second.reason == "stop"
    assert third.errors[0]["code"] == "rate_limited"


async def test_redis_down_gives_clear_error_and_recovers(
    pods: list[RunningServer], redis_node: RedisNode
) -> None:
    """With Redis gone, asks get an unavailable error and the pod stays up; then it recovers."""
    a, _ = pods
    await redis_node.kill()
    async with await a.client() as client:
        down = await client.answer(await client.ask("What is a premise?"), timeout_s=20)
        async with httpx.AsyncClient(base_url=a.http_url) as http:
            live = await http.get("/health/live")
        await redis_node.restart()
        for _ in range(50):
            again = await client.answer(await client.ask("What is a premise?"), timeout_s=20)
            if again.stream:
                break
            await asyncio.sleep(0.1)
    assert down.errors[0]["code"] == "unavailable"
    assert live.status_code == 200
    assert again.reason == "stop"


async def test_three_pods_three_tabs(pod_settings: Callable[..., Settings]) -> None:
    """Tabs of one learner on three pods all see a question and its whole answer."""
    async with AsyncExitStack() as stack:
        pods = [await stack.enter_async_context(run_server(pod_settings(n))) for n in "ABC"]
        tabs = [await stack.enter_async_context(await pod.client()) for pod in pods]
        first = await tabs[0].answer(await tabs[0].ask("What is a fallacy?"))
        for tab in tabs[1:]:
            await tab.send({"type": "open", "id": "o", "session": first.session})
            await tab.wait_for(lambda f: f["type"] == "session")
        ask = await tabs[2].ask("And begging the question?", session=first.session)
        answers = [await tab.answer(ask) for tab in tabs]
        starts = [tab.started[ask] for tab in tabs]
    assert len({a.text for a in answers}) == 1
    assert all(a.seqs == answers[0].seqs and a.reason == "stop" for a in answers)
    assert len(set(starts)) == 1


@pytest.mark.parametrize("bad", ["localhost", "host:port", ":26379", "h:1:x"])
def test_malformed_sentinel_address_is_refused(bad: str) -> None:
    """A REDIS_SENTINELS entry that is not host:port is a clear error."""
    with pytest.raises(ValueError, match="host:port"):
        parse_sentinels((bad,))


async def test_journal_from_before_a_failover_asks_for_resync(
    pods: list[RunningServer], redis_node: RedisNode
) -> None:
    """A journal whose epoch is not the current master's answers stream_resync on resume."""
    a, b = pods
    async with await a.client() as client:
        answer = await client.answer(await client.ask("What is a straw man?"))
    bus = b.runtime.bus
    assert isinstance(bus, RedisBus)
    await bus.redis.hset(keys.stream_meta(answer.stream), "epoch", "a-master-that-is-gone")
    async with await b.client() as other:
        await other.send({"type": "resume", "id": "r", "stream": answer.stream, "after": 0})
        error = await other.recv(5)
    assert (error["type"], error["code"], error["ref"]) == ("error", "stream_resync", "r")
