"""Question counts per course, in process and in a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cache.popular import MemoryPopular, PopularQuestions, RedisPopular
from core.redis_link import connect
from core.settings import RedisSettings
from devtools.cluster import RedisNode


@pytest.fixture(params=["memory", "redis"])
async def popular(request: pytest.FixtureRequest) -> AsyncIterator[PopularQuestions]:
    if request.param == "memory":
        yield MemoryPopular(max_questions=5)
        return
    node = RedisNode()
    await node.start()
    client = connect(RedisSettings(url=node.url))
    try:
        yield RedisPopular(client, max_questions=5)
    finally:
        await client.aclose()
        await node.stop()


async def test_most_asked_first_with_the_first_wording(popular: PopularQuestions) -> None:
    """Variants of one question count together and show in the wording first seen."""
    for text in (
        "What is a valid argument?",
        "what is a valid argument",
        "WHAT IS A VALID ARGUMENT",
    ):
        await popular.record("demo", text)
    await popular.record("demo", "How do I weigh evidence?")
    top = await popular.top("demo", 5)
    assert top == [("What is a valid argument?", 3), ("How do I weigh evidence?", 1)]


async def test_courses_are_counted_apart(popular: PopularQuestions) -> None:
    """A question asked in one course does not show in another."""
    await popular.record("bio", "What do mitochondria do?")
    assert await popular.top("demo", 5) == []
    assert [q for q, _ in await popular.top("bio", 5)] == ["What do mitochondria do?"]


async def test_counts_stay_bounded_and_keep_the_most_asked(popular: PopularQuestions) -> None:
    """However many distinct questions arrive, a course keeps a bounded set with the top ones."""
    for _ in range(10):
        await popular.record("demo", "the favourite question")
    for i in range(600):
        await popular.record("demo", f"rare question number {i}")
    top = await popular.top("demo", 1000)
    assert top[0] == ("the favourite question", 10)
    assert len(top) <= 5 + 200
