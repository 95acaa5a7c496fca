"""The answer cache over the L1-only cache and over a real Redis as L2.

The key and sharing rules as pure functions are in test_answers.py; here they
are checked through the cache: what a put under one key makes a get find.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from cache.answers import AnswerCache, answer_key
from cache.redis_tier import RedisTier
from cache.two_tier import TwoTierCache
from core.redis_link import connect
from core.settings import CacheSettings, RedisSettings
from devtools.cluster import RedisNode

SETTINGS = CacheSettings(max_value_bytes=2048)
QUESTION = "What makes a deductive argument valid?"
KEY = answer_key("demo", "v1", "explain", "model-a", QUESTION)
SOURCES: list[dict[str, Any]] = [
    {"document": "Thinking Clearly", "page": 2, "heading": "Deductive validity", "score": 0.9}
]
MakeAnswers = Callable[[], Awaitable[AnswerCache]]


def redis_pod_maker(stack: AsyncExitStack, node: RedisNode) -> MakeAnswers:
    """Makes pods' answer caches on one Redis, each with its own client and L1."""

    async def make() -> AnswerCache:
        client = connect(RedisSettings(url=node.url))
        stack.push_async_callback(client.aclose)
        tier = RedisTier(client)
        cache = TwoTierCache(SETTINGS, tier)
        await cache.start()
        stack.push_async_callback(cache.stop)
        await asyncio.wait_for(tier.subscribed.wait(), 5)
        return AnswerCache(cache)

    return make


@pytest.fixture(params=["l1", "redis"])
async def make_answers(request: pytest.FixtureRequest) -> AsyncIterator[MakeAnswers]:
    """Makes answer caches: each on L1 alone, or all on one redis-server as L2."""
    async with AsyncExitStack() as stack:
        if request.param == "l1":

            async def make_l1() -> AnswerCache:
                cache = TwoTierCache(SETTINGS)
                await cache.start()
                stack.push_async_callback(cache.stop)
                return AnswerCache(cache)

            yield make_l1
            return
        node = RedisNode()
        await node.start()
        stack.push_async_callback(node.stop)
        yield redis_pod_maker(stack, node)


@pytest.fixture
async def answers(make_answers: MakeAnswers) -> AnswerCache:
    """One pod's answer cache."""
    return await make_answers()


@pytest.fixture
async def redis_pods(redis_node: RedisNode) -> AsyncIterator[MakeAnswers]:
    """Makes pods' answer caches on one real Redis."""
    async with AsyncExitStack() as stack:
        yield redis_pod_maker(stack, redis_node)


async def test_put_then_get_round_trips(answers: AnswerCache) -> None:
    """A put answer comes back with its text, sources and model; other keys miss."""
    assert await answers.get(KEY) is None
    assert await answers.put(KEY, "Validity is about form.", SOURCES, "model-a") is True
    cached = await answers.get(KEY)
    assert cached is not None
    assert (cached.text, cached.sources, cached.model) == (
        "Validity is about form.",
        SOURCES,
        "model-a",
    )
    assert cached.created_at > 0
    assert await answers.get(answer_key("demo", "v1", "explain", "model-a", "Other?")) is None


async def test_answer_over_the_size_cap_is_refused(answers: AnswerCache) -> None:
    """put returns False for an answer over max_value_bytes, and it is not cached."""
    assert await answers.put(KEY, "word " * 1000, SOURCES, "model-a") is False
    assert await answers.get(KEY) is None


async def test_retire_all_forgets_every_answer(answers: AnswerCache) -> None:
    """After retire_all no answer put before it is found."""
    other = answer_key("demo", "v1", "explain", "model-a", "What is a fallacy?")
    for key in (KEY, other):
        assert await answers.put(key, "An answer.", [], "model-a")
    assert await answers.retire_all() >= 1
    assert await answers.get(KEY) is None
    assert await answers.get(other) is None


async def test_spelling_variants_share_one_cached_answer(answers: AnswerCache) -> None:
    """Case, spacing and trailing punctuation fold away: the variant finds the answer."""
    await answers.put(KEY, "Validity is about form.", SOURCES, "model-a")
    spelled = "  what makes a DEDUCTIVE  argument valid"
    variant = answer_key("demo", "v1", "explain", "model-a", spelled)
    cached = await answers.get(variant)
    assert cached is not None and cached.text == "Validity is about form."


@pytest.mark.parametrize(
    "changed",
    [
        ("biology", "v1", "explain", "model-a"),
        ("demo", "v2", "explain", "model-a"),
        ("demo", "v1", "hint", "model-a"),
        ("demo", "v1", "explain", "model-b"),
    ],
    ids=["course", "index-version", "mode", "model"],
)
async def test_answer_is_not_found_under_another_key_part(
    answers: AnswerCache, changed: tuple[str, str, str, str]
) -> None:
    """Another course, index version, mode or model misses the cached answer."""
    await answers.put(KEY, "Validity is about form.", SOURCES, "model-a")
    assert await answers.get(answer_key(*changed, QUESTION)) is None


async def test_answer_put_on_one_pod_is_found_on_another(redis_pods: MakeAnswers) -> None:
    """With Redis as L2, a pod with an empty L1 finds the answer another pod cached."""
    one, two = await redis_pods(), await redis_pods()
    await one.put(KEY, "Validity is about form.", SOURCES, "model-a")
    cached = await two.get(KEY)
    assert cached is not None
    assert (cached.text, cached.sources, cached.model) == (
        "Validity is about form.",
        SOURCES,
        "model-a",
    )


async def test_answer_over_the_cap_reaches_no_pod(redis_pods: MakeAnswers) -> None:
    """An answer refused for its size is not written to Redis either."""
    one, two = await redis_pods(), await redis_pods()
    assert await one.put(KEY, "word " * 1000, SOURCES, "model-a") is False
    assert await two.get(KEY) is None
