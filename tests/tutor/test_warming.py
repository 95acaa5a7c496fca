"""Warming the answer cache with the most asked questions, through the real openai client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cache.answers import AnswerCache, answer_key
from cache.popular import MemoryPopular
from cache.two_tier import TwoTierCache
from core.settings import CacheSettings
from knowledge.demo_course import DEMO_COURSE, demo_retriever
from tests.support import harbour
from tests.support.fake_openai import FakeOpenAI, Reply, provider_settings, run_fake_openai
from tutor.llm_openai import OpenAIProvider
from tutor.warming import warm_answers

WORDS = ["Validity ", "is ", "about ", "form", "."]
LEARNERS = ("ann", "ben", "cat", "dan", "eve")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with run_fake_openai(default=Reply.answer(WORDS), model="tutor-model") as server:
        yield server


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    llm = OpenAIProvider(provider_settings(fake, first_token_timeout_s=0.5, breaker_failures=2))
    yield llm
    await llm.aclose()


async def popular_questions() -> MemoryPopular:
    """Two questions each asked by five learners (the default needed to share one)."""
    popular = MemoryPopular()
    for question, times in (("What makes an argument valid?", 3), ("How do I weigh evidence?", 2)):
        for _ in range(times):
            for user in LEARNERS:
                await popular.record(DEMO_COURSE, question, user)
    return popular


async def test_warming_caches_the_most_asked_answers_once(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    """The top questions get cached answers with sources; a second run asks the model nothing."""
    answers = AnswerCache(TwoTierCache(CacheSettings()))
    retriever = demo_retriever()
    popular = await popular_questions()
    parts = {"retriever": retriever, "provider": provider, "answers": answers, "popular": popular}
    first = await warm_answers(DEMO_COURSE, **parts)
    again = await warm_answers(DEMO_COURSE, **parts)
    assert (first.generated, first.failed) == (2, 0)
    assert (again.generated, again.already_cached) == (0, 2)
    assert len(fake.requests) == 2
    version = await retriever.index_version(DEMO_COURSE)
    key = answer_key(DEMO_COURSE, version, "explain", "tutor-model", "what makes an argument valid")
    cached = await answers.get(key)
    assert cached is not None
    assert cached.text == "Validity is about form."
    assert cached.model == "tutor-model"
    assert cached.sources and all(s["page"] for s in cached.sources)


async def test_warming_stops_when_the_model_is_failing(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    """With the model down nothing is cached, and an open breaker ends the run early."""
    fake.default = Reply.error(503)
    answers = AnswerCache(TwoTierCache(CacheSettings()))
    popular = await popular_questions()
    for i in range(5):
        for user in LEARNERS:
            await popular.record(DEMO_COURSE, f"Question number {i} about arguments", user)
    report = await warm_answers(
        DEMO_COURSE,
        retriever=demo_retriever(),
        provider=provider,
        answers=answers,
        popular=popular,
    )
    assert report.generated == 0
    assert report.failed == 3  # two failures open the breaker; the third finds it open
    assert len(fake.requests) == 2


async def test_unknown_course_warms_nothing(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    """A course the retriever does not know is skipped without a model call."""
    report = await warm_answers(
        "nope",
        retriever=demo_retriever(),
        provider=provider,
        answers=AnswerCache(TwoTierCache(CacheSettings())),
        popular=await popular_questions(),
    )
    assert report.generated == 0 and fake.requests == []


async def test_only_shared_questions_are_warmed(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    """Questions few learners asked, or holding personal data, get no answer generated."""
    answers = AnswerCache(TwoTierCache(CacheSettings()))
    popular = await popular_questions()
    for _ in range(10):
        await popular.record(DEMO_COURSE, "Is Professor Hale's marking of my essay fair?", "ann")
    for user in LEARNERS:
        await popular.record(DEMO_COURSE, "I am student 20231187, what is a fallacy?", user)
    retriever = demo_retriever()
    report = await warm_answers(
        DEMO_COURSE, retriever=retriever, provider=provider, answers=answers, popular=popular
    )
    assert (report.generated, report.failed) == (2, 0)
    asked = [r["messages"][-1]["content"] for r in fake.requests]
    assert sorted(asked) == ["how do i weigh evidence", "what makes an argument valid"]


async def test_questions_the_course_does_not_cover_are_not_warmed(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    """A popular question off the course costs no model call: its ask answers it as such."""
    retriever = harbour.harbour_retriever(tmp_path)
    popular = MemoryPopular()
    for user in LEARNERS:
        await popular.record(harbour.COURSE, "how many calories are in a banana", user)
        await popular.record(harbour.COURSE, "which knot makes a loop that won't slip", user)
    answers = AnswerCache(TwoTierCache(CacheSettings()))
    try:
        report = await warm_answers(
            harbour.COURSE, retriever=retriever, provider=provider, answers=answers, popular=popular
        )
    finally:
        retriever.close()
        retriever.kb.close()
    assert report.generated == 1
    assert len(fake.requests) == 1
