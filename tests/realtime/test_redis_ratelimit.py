"""Ask limits in Redis, shared by every pod, held to the same contract as the in-process ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest

from core.redis_link import connect
from core.settings import RedisSettings
from devtools.cluster import RedisNode, free_port
from realtime.ratelimit import AskLimiter, TokenBuckets
from realtime.redis_ratelimit import RedisTokenBuckets
from tests.support.redis import own_redis

# Slow enough that no token comes back while a test runs: one a minute.
SLOW_PER_S = 1 / 60
MakeLimiter = Callable[[float, int], AskLimiter]


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """Makes limiters of one kind: in process, or in a redis-server of the test's own."""
    async with AsyncExitStack() as stack:
        if request.param == "memory":
            yield TokenBuckets
            return
        client = await stack.enter_async_context(own_redis())
        yield lambda rate_per_s, burst: RedisTokenBuckets(client, rate_per_s, burst)


async def takes(limiter: AskLimiter, key: str, n: int) -> list[float]:
    """The answers to ``n`` asks in a row."""
    return [await limiter.allow(key) for _ in range(n)]


async def test_burst_allowed_then_refused_with_a_wait(make_limiter: MakeLimiter) -> None:
    """The first burst asks pass; the next is refused with a wait of at most one token's time."""
    limiter = make_limiter(SLOW_PER_S, 3)
    *allowed, refused = await takes(limiter, "alice", 4)
    assert allowed == [0.0, 0.0, 0.0]
    assert 0 < refused <= 1 / SLOW_PER_S


async def test_refusal_does_not_use_up_a_token(make_limiter: MakeLimiter) -> None:
    """Asking again while refused never makes the wait longer."""
    limiter = make_limiter(SLOW_PER_S, 1)
    await limiter.allow("alice")
    first, second, third = await takes(limiter, "alice", 3)
    assert 0 < third <= second <= first


async def test_tokens_come_back_at_the_rate(make_limiter: MakeLimiter) -> None:
    """Once refused, waiting the returned time lets the next ask through."""
    rate_per_s = 5.0
    limiter = make_limiter(rate_per_s, 2)
    *_, refused = await takes(limiter, "alice", 3)
    assert 0 < refused <= 1 / rate_per_s
    async with asyncio.timeout(5):
        wait = refused
        while wait > 0:
            await asyncio.sleep(wait)
            wait = await limiter.allow("alice")


async def test_keys_are_independent(make_limiter: MakeLimiter) -> None:
    """One user out of tokens does not limit another."""
    limiter = make_limiter(SLOW_PER_S, 2)
    await takes(limiter, "alice", 2)
    assert await limiter.allow("alice") > 0
    assert await takes(limiter, "bob", 2) == [0.0, 0.0]


@pytest.mark.parametrize(("rate_per_s", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
async def test_rejects_a_limit_that_allows_nothing(
    make_limiter: MakeLimiter, rate_per_s: float, burst: int
) -> None:
    """A rate that is not positive or a burst below one is refused at construction."""
    with pytest.raises(ValueError, match="rate_per_s"):
        make_limiter(rate_per_s, burst)


async def test_redis_buckets_are_shared_by_pods(redis_node: RedisNode) -> None:
    """A user who spent the burst on one pod is refused on another."""
    one, two = (connect(RedisSettings(url=redis_node.url)) for _ in range(2))
    try:
        pod_a = RedisTokenBuckets(one, SLOW_PER_S, 2)
        pod_b = RedisTokenBuckets(two, SLOW_PER_S, 2)
        assert await takes(pod_a, "alice", 2) == [0.0, 0.0]
        assert await pod_b.allow("alice") > 0
        assert await pod_b.allow("bob") == 0.0
    finally:
        await one.aclose()
        await two.aclose()


async def test_unreachable_redis_falls_back_to_this_pods_buckets() -> None:
    """With Redis down an ask never fails: the pod's own buckets still limit it."""
    client = connect(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        limiter = RedisTokenBuckets(client, SLOW_PER_S, 1)
        allowed, refused = await takes(limiter, "alice", 2)
        assert allowed == 0.0
        assert 0 < refused <= 1 / SLOW_PER_S
    finally:
        await client.aclose()
