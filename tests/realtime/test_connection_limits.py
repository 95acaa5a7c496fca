"""Per-user connection slots: in process, and in Redis shared by every pod."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest

from core.redis_link import connect
from core.settings import RedisSettings
from devtools.cluster import RedisNode, free_port
from realtime.connection_limits import (
    ConnectionLimits,
    MemoryConnectionLimits,
    RedisConnectionLimits,
)
from tests.support.clock import FakeClock
from tests.support.redis import own_redis

TTL_S = 60.0
MakeLimits = Callable[[int], ConnectionLimits]


@pytest.fixture(params=["memory", "redis"])
async def make_limits(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimits]:
    """Makes limits of one kind: in process, or in a redis-server of the test's own."""
    async with AsyncExitStack() as stack:
        if request.param == "memory":
            yield MemoryConnectionLimits
            return
        client = await stack.enter_async_context(own_redis())
        yield lambda cap: RedisConnectionLimits(client, pod="pod-a", max_per_user=cap, ttl_s=TTL_S)


async def claims(limits: ConnectionLimits, user: str, connections: list[str]) -> list[bool]:
    """The answers to claiming each connection in turn."""
    return [await limits.claim(user, c) for c in connections]


async def test_claims_up_to_the_cap_then_refused(make_limits: MakeLimits) -> None:
    """A user gets ``cap`` slots; the next connection is refused."""
    limits = make_limits(3)
    assert await claims(limits, "alice", ["c1", "c2", "c3", "c4"]) == [True, True, True, False]


async def test_release_frees_the_slot_at_once(make_limits: MakeLimits) -> None:
    """After one connection closes, the next one is allowed."""
    limits = make_limits(2)
    await claims(limits, "alice", ["c1", "c2"])
    await limits.release("alice", "c1")
    assert await limits.claim("alice", "c3") is True
    assert await limits.claim("alice", "c4") is False


async def test_users_are_independent(make_limits: MakeLimits) -> None:
    """One user at the cap does not limit another."""
    limits = make_limits(1)
    assert await limits.claim("alice", "c1") is True
    assert await limits.claim("alice", "c2") is False
    assert await limits.claim("bob", "c3") is True


async def test_releasing_an_unknown_slot_frees_nothing(make_limits: MakeLimits) -> None:
    """Releasing a connection that never held a slot leaves the count alone."""
    limits = make_limits(1)
    await limits.claim("alice", "c1")
    await limits.release("alice", "never-claimed")
    assert await limits.claim("alice", "c2") is False


def test_a_cap_below_one_is_refused() -> None:
    """A cap that allows no connection at all is a configuration error."""
    with pytest.raises(ValueError, match="max_per_user"):
        MemoryConnectionLimits(0)


async def test_slots_are_shared_by_pods(redis_node: RedisNode) -> None:
    """A user at the cap on one pod is refused on another; a close on the first frees it."""
    one, two = (connect(RedisSettings(url=redis_node.url)) for _ in range(2))
    try:
        pod_a = RedisConnectionLimits(one, pod="pod-a", max_per_user=2, ttl_s=TTL_S)
        pod_b = RedisConnectionLimits(two, pod="pod-b", max_per_user=2, ttl_s=TTL_S)
        assert await pod_a.claim("alice", "c1") is True
        assert await pod_b.claim("alice", "c2") is True
        assert await pod_a.claim("alice", "c3") is False
        assert await pod_b.claim("alice", "c3") is False
        await pod_a.release("alice", "c1")
        assert await pod_b.claim("alice", "c3") is True
    finally:
        await one.aclose()
        await two.aclose()


async def test_pods_racing_for_the_last_slots_take_exactly_the_cap(redis_node: RedisNode) -> None:
    """Claims from two pods at once never hand out more slots than the cap."""
    one, two = (connect(RedisSettings(url=redis_node.url)) for _ in range(2))
    try:
        pods = [
            RedisConnectionLimits(client, pod=name, max_per_user=5, ttl_s=TTL_S)
            for client, name in ((one, "pod-a"), (two, "pod-b"))
        ]
        results = await asyncio.gather(*(pods[i % 2].claim("alice", f"c{i}") for i in range(40)))
        assert sum(results) == 5
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_crashed_pods_slots_stop_counting_after_the_ttl(redis_node: RedisNode) -> None:
    """Slots a pod stopped renewing (it died) expire; a pod that renews keeps its own."""
    clock = FakeClock()
    one, two = (connect(RedisSettings(url=redis_node.url)) for _ in range(2))
    try:
        dead = RedisConnectionLimits(one, pod="dead", max_per_user=2, ttl_s=TTL_S, clock=clock)
        alive = RedisConnectionLimits(two, pod="alive", max_per_user=2, ttl_s=TTL_S, clock=clock)
        assert await claims(dead, "alice", ["c1", "c2"]) == [True, True]
        assert await claims(alive, "bob", ["c1", "c2"]) == [True, True]
        clock.advance(TTL_S * 2 / 3)
        await alive.renew()
        clock.advance(TTL_S * 2 / 3)
        assert await alive.claim("alice", "c3") is True
        assert await dead.claim("bob", "c3") is False
    finally:
        await one.aclose()
        await two.aclose()


async def test_unreachable_redis_falls_back_to_this_pods_count() -> None:
    """With Redis down a learner can still connect: the pod's own count applies the cap."""
    client = connect(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        limits = RedisConnectionLimits(client, pod="pod-a", max_per_user=2, ttl_s=TTL_S)
        assert await claims(limits, "alice", ["c1", "c2", "c3"]) == [True, True, False]
        await limits.release("alice", "c1")
        assert await limits.claim("alice", "c3") is True
    finally:
        await client.aclose()
