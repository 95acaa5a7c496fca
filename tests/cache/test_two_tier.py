"""The two-tier cache on L1 alone and with a real Redis as L2, one or two pods."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from cache.answers import ANSWERS, CachedAnswer
from cache.codec import Namespace
from cache.redis_tier import RedisTier
from cache.two_tier import TwoTierCache
from core import keys
from core.redis_link import connect
from core.settings import CacheSettings, RedisSettings
from devtools.cluster import RedisNode, redis_command


class Item(msgspec.Struct, frozen=True):
    name: str
    size: int


ITEMS: Namespace[Item] = Namespace("items", Item)
BLOBS: Namespace[str] = Namespace("blobs", str)


class Seen:
    """A cache observer that keeps what it was told."""

    def __init__(self) -> None:
        self.hits: Counter[tuple[str, str]] = Counter()
        self.misses: Counter[str] = Counter()
        self.loads: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def cache_hit(self, namespace: str, tier: str) -> None:
        self.hits[namespace, tier] += 1

    def cache_miss(self, namespace: str) -> None:
        self.misses[namespace] += 1

    def cache_load(self, namespace: str, seconds: float) -> None:
        self.loads[namespace] += 1

    def cache_rejected(self, namespace: str) -> None:
        self.rejected[namespace] += 1

    def cache_error(self, operation: str) -> None:
        self.errors[operation] += 1


SETTINGS = CacheSettings(lock_wait_s=5.0, l2_retry_s=0.2, max_value_bytes=4096)
MakePod = Callable[..., Awaitable[tuple[TwoTierCache, Seen]]]


def node_settings(node: RedisNode) -> RedisSettings:
    return RedisSettings(url=node.url, socket_timeout_s=0.5)


def pod_maker(stack: AsyncExitStack, node: RedisNode) -> MakePod:
    """Makes pods' caches on one Redis, each with its own connection pool and L1."""

    async def make(settings: CacheSettings = SETTINGS) -> tuple[TwoTierCache, Seen]:
        client = connect(node_settings(node))
        stack.push_async_callback(client.aclose)
        tier = RedisTier(client, subscriber=connect(node_settings(node), retries=0))
        seen = Seen()
        cache = TwoTierCache(settings, tier, observer=seen)
        await cache.start()
        stack.push_async_callback(cache.stop)
        await asyncio.wait_for(tier.subscribed.wait(), 5)
        return cache, seen

    return make


@pytest.fixture
async def make_pod(redis_node: RedisNode) -> AsyncIterator[MakePod]:
    """Pods' caches on one Redis."""
    async with AsyncExitStack() as stack:
        yield pod_maker(stack, redis_node)


@pytest.fixture(params=["l1", "redis"])
async def pod(request: pytest.FixtureRequest) -> AsyncIterator[tuple[TwoTierCache, Seen]]:
    """One pod's cache: L1 alone (embedded) or with its own Redis as L2."""
    async with AsyncExitStack() as stack:
        if request.param == "l1":
            seen = Seen()
            cache = TwoTierCache(SETTINGS, observer=seen)
            await cache.start()
            stack.push_async_callback(cache.stop)
            yield cache, seen
            return
        node = RedisNode()
        await node.start()
        stack.push_async_callback(node.stop)
        yield await pod_maker(stack, node)()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    """Wait until ``check()`` holds (a broadcast crosses pods asynchronously)."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - the condition lives in another process
            await asyncio.sleep(0.02)


async def test_miss_then_set_then_l1_hit(pod: tuple[TwoTierCache, Seen]) -> None:
    """A miss returns None; after set the value comes back from L1, equal and typed."""
    cache, seen = pod
    assert await cache.get(ITEMS, "a") is None
    assert await cache.set(ITEMS, "a", Item("a", 1)) is True
    assert await cache.get(ITEMS, "a") == Item("a", 1)
    assert seen.misses["items"] == 1
    assert seen.hits["items", "l1"] == 1


async def test_get_or_load_loads_once_and_caches(pod: tuple[TwoTierCache, Seen]) -> None:
    """The loader runs on the first miss only; later reads hit."""
    cache, seen = pod
    calls = 0

    async def load() -> Item:
        nonlocal calls
        calls += 1
        return Item("b", 2)

    assert await cache.get_or_load(ITEMS, "b", load) == Item("b", 2)
    assert await cache.get_or_load(ITEMS, "b", load) == Item("b", 2)
    assert calls == 1
    assert seen.loads["items"] == 1


async def test_concurrent_misses_in_one_pod_share_one_load(
    pod: tuple[TwoTierCache, Seen],
) -> None:
    """100 concurrent misses for one key in one pod run the loader once."""
    cache, _ = pod
    calls = 0

    async def load() -> Item:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return Item("c", 3)

    results = await asyncio.gather(*(cache.get_or_load(ITEMS, "c", load) for _ in range(100)))
    assert calls == 1
    assert set(results) == {Item("c", 3)}


async def test_failing_loader_is_not_cached_and_does_not_block_other_keys(
    pod: tuple[TwoTierCache, Seen],
) -> None:
    """Every waiter of a failing load gets its error; nothing is cached; other keys go on."""
    cache, _ = pod
    release = asyncio.Event()

    async def failing() -> Item:
        await release.wait()
        raise RuntimeError("backend down")

    waiters = [asyncio.ensure_future(cache.get_or_load(ITEMS, "bad", failing)) for _ in range(5)]
    await asyncio.sleep(0.05)

    async def fine() -> Item:
        return Item("good", 1)

    # The slow, failing key does not hold up another key.
    assert await asyncio.wait_for(cache.get_or_load(ITEMS, "good", fine), 2) == Item("good", 1)
    release.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await cache.get(ITEMS, "bad") is None

    async def recovered() -> Item:
        return Item("bad", 2)

    assert await cache.get_or_load(ITEMS, "bad", recovered) == Item("bad", 2)


async def test_a_caller_giving_up_does_not_cancel_the_shared_load(
    pod: tuple[TwoTierCache, Seen],
) -> None:
    """When the first caller is cancelled, the others still get the value."""
    cache, _ = pod

    async def load() -> Item:
        await asyncio.sleep(0.1)
        return Item("d", 4)

    first = asyncio.ensure_future(cache.get_or_load(ITEMS, "d", load))
    second = asyncio.ensure_future(cache.get_or_load(ITEMS, "d", load))
    await asyncio.sleep(0.02)
    first.cancel()
    assert await second == Item("d", 4)
    assert await cache.get(ITEMS, "d") == Item("d", 4)


async def test_values_over_the_cap_are_not_cached(pod: tuple[TwoTierCache, Seen]) -> None:
    """A value larger than max_value_bytes is returned to its caller but never cached."""
    cache, seen = pod
    big = "x" * 5000

    async def load() -> str:
        return big

    assert await cache.set(BLOBS, "big", big) is False
    assert await cache.get_or_load(BLOBS, "big", load) == big
    assert await cache.get(BLOBS, "big") is None
    assert seen.rejected["blobs"] == 2
    assert await cache.set(BLOBS, "small", "x" * 100) is True
    assert await cache.get(BLOBS, "small") == "x" * 100


async def test_retiring_a_namespace_drops_its_values_only(
    pod: tuple[TwoTierCache, Seen],
) -> None:
    """After retire(ns) its keys miss; another namespace keeps its values."""
    cache, _ = pod
    await cache.set(ITEMS, "e", Item("e", 5))
    await cache.set(BLOBS, "e", "kept")
    await cache.retire(ITEMS)
    assert await cache.get(ITEMS, "e") is None
    assert await cache.get(BLOBS, "e") == "kept"


async def test_l2_hit_fills_the_other_pods_l1(make_pod: MakePod) -> None:
    """A value stored by pod A is an L2 hit on pod B, then an L1 hit there."""
    (a, _), (b, seen_b) = await make_pod(), await make_pod()
    await a.set(ITEMS, "k", Item("k", 1))
    assert await b.get(ITEMS, "k") == Item("k", 1)
    assert await b.get(ITEMS, "k") == Item("k", 1)
    assert seen_b.hits["items", "l2"] == 1
    assert seen_b.hits["items", "l1"] == 1


async def test_invalidation_reaches_both_pods(make_pod: MakePod) -> None:
    """Invalidating a key on A drops it from B's L1 as well."""
    (a, _), (b, _) = await make_pod(), await make_pod()
    await a.set(ITEMS, "k", Item("k", 1))
    assert await b.get(ITEMS, "k") == Item("k", 1)  # now in B's L1
    await a.invalidate(ITEMS, "k")
    await eventually(lambda: _is_missing(b, ITEMS, "k"))
    assert await a.get(ITEMS, "k") is None


async def test_invalidation_sent_while_a_listener_was_cut_off_is_not_missed(
    redis_node: RedisNode,
) -> None:
    """Redis drops B's invalidation listener and A invalidates a key meanwhile: once B
    listens again it does not serve its stale copy."""
    async with AsyncExitStack() as stack:
        a, _ = await pod_maker(stack, redis_node)()
        client = connect(node_settings(redis_node))
        stack.push_async_callback(client.aclose)
        tier = RedisTier(client, subscriber=connect(node_settings(redis_node), retries=0))
        b = TwoTierCache(SETTINGS, tier)
        await b.start()
        stack.push_async_callback(b.stop)
        await asyncio.wait_for(tier.subscribed.wait(), 5)
        await a.set(ITEMS, "k", Item("k", 1))
        assert await b.get(ITEMS, "k") == Item("k", 1)  # now in B's L1
        await redis_command(redis_node.port, "CLIENT", "KILL", "TYPE", "pubsub")
        async with asyncio.timeout(5):
            while tier.subscribed.is_set():  # noqa: ASYNC110 - cleared by B's listener task
                await asyncio.sleep(0.001)
        await a.invalidate(ITEMS, "k")
        await asyncio.wait_for(tier.subscribed.wait(), 5)
        assert await b.get(ITEMS, "k") is None


async def test_retiring_a_namespace_reaches_both_pods(make_pod: MakePod) -> None:
    """A namespace retired on A misses on B, whose L1 copies are dropped."""
    (a, _), (b, _) = await make_pod(), await make_pod()
    for key in ("x", "y"):
        await a.set(ITEMS, key, Item(key, 1))
        assert await b.get(ITEMS, key) is not None
    assert b.l1_size == 2
    await a.retire(ITEMS)
    await eventually(lambda: _is_missing(b, ITEMS, "x"))
    assert b.l1_size == 0
    assert await b.get(ITEMS, "y") is None


async def _is_missing(cache: TwoTierCache, ns: Namespace[Any], key: str) -> bool:
    return await cache.get(ns, key) is None


async def test_concurrent_misses_across_two_pods_run_the_loader_once(make_pod: MakePod) -> None:
    """100 concurrent misses for one key, split over two pods, run the loader once."""
    (a, _), (b, _) = await make_pod(), await make_pod()
    calls = 0

    async def load() -> Item:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return Item("z", 26)

    results = await asyncio.gather(*(pod.get_or_load(ITEMS, "z", load) for pod in [a, b] * 50))
    assert calls == 1
    assert set(results) == {Item("z", 26)}


async def test_a_pod_stops_waiting_for_a_lock_holder_that_never_delivers(
    make_pod: MakePod, redis_node: RedisNode
) -> None:
    """If the pod holding the lock never stores a value, the others compute after lock_wait_s."""
    ((a, _),) = [await make_pod(CacheSettings(lock_wait_s=0.3, lock_ttl_s=30))]
    # Another pod took the lock and died without releasing it.
    full = "items:1.0:stuck"
    raw = aioredis.Redis.from_url(redis_node.url)
    try:
        assert await raw.set(keys.cache_lock(full), "dead-pod", nx=True, px=30_000)
    finally:
        await raw.aclose()

    async def load() -> Item:
        return Item("stuck", 1)

    assert await asyncio.wait_for(a.get_or_load(ITEMS, "stuck", load), 5) == Item("stuck", 1)


async def test_poisoned_l2_value_is_a_miss_and_is_replaced(
    make_pod: MakePod, redis_node: RedisNode
) -> None:
    """An undecodable or wrongly shaped L2 value is treated as a miss, then overwritten."""
    ((a, seen),) = [await make_pod()]
    raw = aioredis.Redis.from_url(redis_node.url)
    try:
        for poison in (b"\x80not json", b'{"name": 5}'):
            await raw.set(keys.cache_value("items:1.0:p"), poison)
            assert await a.get(ITEMS, "p") is None

            async def load() -> Item:
                return Item("p", 1)

            assert await a.get_or_load(ITEMS, "p", load) == Item("p", 1)
            stored = await raw.get(keys.cache_value("items:1.0:p"))
            assert msgspec.json.decode(stored, type=Item) == Item("p", 1)
            await a.invalidate(ITEMS, "p")
    finally:
        await raw.aclose()
    assert seen.errors["decode"] >= 2  # every read of a poisoned value counts


async def test_redis_killed_mid_run_the_cache_keeps_answering(
    make_pod: MakePod, redis_node: RedisNode
) -> None:
    """With Redis gone, reads and loads still succeed from L1 and the loader; errors are counted."""
    ((a, seen),) = [await make_pod()]
    await a.set(ITEMS, "warm", Item("warm", 1))
    await redis_node.kill()
    calls = 0

    async def load() -> Item:
        nonlocal calls
        calls += 1
        return Item("cold", calls)

    assert await a.get(ITEMS, "warm") == Item("warm", 1)  # L1 still holds it
    for _ in range(3):
        assert await a.get_or_load(ITEMS, "cold", load) == Item("cold", 1)
    assert calls == 1  # cached in L1 while L2 is away
    assert sum(seen.errors.values()) >= 1
    # Redis back: the pod uses L2 again (after l2_retry_s) and starts from a clean L1.
    await redis_node.restart()
    await asyncio.sleep(SETTINGS.l2_retry_s + 0.05)

    async def written() -> bool:
        await a.set(ITEMS, "after", Item("after", 1))
        raw = aioredis.Redis.from_url(redis_node.url)
        try:
            return bool(await raw.exists(keys.cache_value("items:1.0:after")))
        finally:
            await raw.aclose()

    await eventually(written)


async def test_cli_retire_reaches_running_pods(make_pod: MakePod, redis_node: RedisNode) -> None:
    """``livetutor cache retire answers`` drops the answers every pod holds, and nothing else."""
    (a, _), (b, _) = await make_pod(), await make_pod()
    answer = CachedAnswer(text="t", sources=[], model="m", created_at=0.0)
    for pod in (a, b):
        await pod.set(ANSWERS, "q", answer)
        await pod.set(ITEMS, "q", Item("q", 1))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "cache",
        "retire",
        "answers",
        env={**os.environ, "REDIS_URL": redis_node.url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "retired" in out.decode()
    for pod in (a, b):
        await eventually(functools.partial(_is_missing, pod, ANSWERS, "q"))
        assert await pod.get(ITEMS, "q") == Item("q", 1)


def test_cli_retire_without_redis_says_why(tmp_path: Path) -> None:
    """With no Redis configured, retiring explains that each server's cache is its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS")}
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "cache", "retire", "answers"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "LIVETUTOR_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "no Redis is configured" in result.stderr
