"""Question counts per course, and which questions are shared, in process and in a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cache.popular import MemoryPopular, PopularQuestions, RedisPopular
from core.redis_link import connect
from core.settings import RedisSettings
from devtools.cluster import RedisNode

MakePopular = Callable[..., Awaitable[PopularQuestions]]
LEARNERS = ("ann", "ben", "cat")


@pytest.fixture(params=["memory", "redis"])
async def make_popular(request: pytest.FixtureRequest) -> AsyncIterator[MakePopular]:
    """Makes question counts on one side; ``min_learners`` as given, 5 questions per course."""
    if request.param == "memory":

        async def in_process(min_learners: int = 1) -> PopularQuestions:
            return MemoryPopular(max_questions=5, min_learners=min_learners)

        yield in_process
        return
    node = RedisNode()
    await node.start()
    client = connect(RedisSettings(url=node.url))

    async def in_redis(min_learners: int = 1) -> PopularQuestions:
        return RedisPopular(client, max_questions=5, min_learners=min_learners)

    try:
        yield in_redis
    finally:
        await client.aclose()
        await node.stop()


def spelled(number: int) -> str:
    """``number`` in letters (a question with digits in it would not be counted)."""
    return "".join(chr(ord("a") + int(digit)) for digit in str(number))


@pytest.fixture
async def popular(make_popular: MakePopular) -> PopularQuestions:
    """Counts that share a question as soon as one learner asked it."""
    return await make_popular()


async def test_most_asked_first_with_the_first_wording(popular: PopularQuestions) -> None:
    """Variants of one question count together and show in the wording first seen."""
    for text in (
        "What is a valid argument?",
        "what is a valid argument",
        "WHAT IS A VALID ARGUMENT",
    ):
        await popular.record("demo", text, "ann")
    await popular.record("demo", "How do I weigh evidence?", "ann")
    top = await popular.top("demo", 5)
    assert top == [("What is a valid argument?", 3), ("How do I weigh evidence?", 1)]


async def test_courses_are_counted_apart(popular: PopularQuestions) -> None:
    """A question asked in one course does not show in another."""
    await popular.record("bio", "What do mitochondria do?", "ann")
    assert await popular.top("demo", 5) == []
    assert [q for q, _ in await popular.top("bio", 5)] == ["What do mitochondria do?"]


async def test_counts_stay_bounded_and_keep_the_most_asked(popular: PopularQuestions) -> None:
    """However many distinct questions arrive, a course keeps a bounded set with the top ones."""
    for _ in range(10):
        await popular.record("demo", "the favourite question", "ann")
    for i in range(600):
        await popular.record("demo", f"rare question {spelled(i)}", "ann")
    top = await popular.top("demo", 1000)
    assert top[0] == ("the favourite question", 10)
    assert len(top) <= 5 + 200


async def test_a_question_is_shared_once_enough_learners_asked_it(
    make_popular: MakePopular,
) -> None:
    """However often one or two learners ask, a question is shared only from the third learner."""
    popular = await make_popular(min_learners=3)
    for _ in range(20):
        for user in LEARNERS[:2]:
            await popular.record("demo", "Is my essay on Kant good enough to pass?", user)
    assert await popular.top("demo", 5) == []
    await popular.record("demo", "is my essay on kant good enough to pass", LEARNERS[2])
    assert await popular.top("demo", 5) == [("Is my essay on Kant good enough to pass?", 41)]


@pytest.mark.parametrize(
    "question",
    [
        "My student number is 4242-1187 and I failed my midterm, what is a syllogism",
        "I am ann.lee@example.org, what is a syllogism",
        "what is a syllogism s1234",
    ],
)
async def test_questions_with_personal_data_are_never_shared(
    make_popular: MakePopular, question: str
) -> None:
    """A question holding an id, an e-mail or a number is not shared, however many ask it."""
    popular = await make_popular(min_learners=2)
    for user in LEARNERS:
        await popular.record("demo", question, user)
    assert await popular.top("demo", 5) == []


async def test_a_removed_question_stays_removed(make_popular: MakePopular) -> None:
    """After an instructor removes a shared question, asking it again never shares it again."""
    popular = await make_popular(min_learners=2)
    question = "Why did the professor fail everyone in section B?"
    for user in LEARNERS:
        await popular.record("demo", question, user)
    await popular.record("demo", "What is a syllogism?", "ann")
    await popular.record("demo", "What is a syllogism?", "ben")
    assert await popular.top("demo", 5) == [(question, 3), ("What is a syllogism?", 2)]
    assert await popular.remove("demo", "why did the professor fail everyone in section b")
    for user in (*LEARNERS, "dan", "eve"):
        await popular.record("demo", question, user)
    assert await popular.top("demo", 5) == [("What is a syllogism?", 2)]
