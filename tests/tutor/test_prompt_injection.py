"""Course PDFs that carry instructions: the tutor teaches from them and never obeys them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cache.answers import AnswerCache
from cache.popular import MemoryPopular
from cache.two_tier import TwoTierCache
from core.retrieval import Passage
from core.settings import CacheSettings
from knowledge.lexical import LexicalRetriever
from realtime.protocol import Mode
from tests.support.fake_openai import FakeOpenAI, Reply, provider_settings, run_fake_openai
from tests.support.injection import (
    BREAKOUT,
    COURSE,
    INJECTION,
    PAYLOAD,
    QUESTION,
    injected_passages,
)
from tutor.generation import answer_prompt, shared_question
from tutor.llm import Prompt
from tutor.llm_offline import compose
from tutor.llm_openai import OpenAIProvider
from tutor.prompts import CLOSE, OPEN
from tutor.warming import warm_answers

WORDS = ["Every ", "boat ", "shows ", "a ", "white ", "light ", "after ", "dark ", "[1]."]
NORMAL = "".join(WORDS)


@pytest.fixture(scope="module")
def passages() -> list[Passage]:
    """The hostile PDF's passages, extracted once for the module."""
    return injected_passages()


@pytest.fixture
def retriever(passages: list[Passage]) -> LexicalRetriever:
    return LexicalRetriever({COURSE: passages})


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with run_fake_openai(default=Reply.gullible_answer(WORDS), model="tutor-model") as srv:
        yield srv


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    llm = OpenAIProvider(provider_settings(fake, first_token_timeout_s=5.0))
    yield llm
    await llm.aclose()


async def question_prompt(
    retriever: LexicalRetriever, mode: Mode = "explain", hint_level: int = 0, continuation: str = ""
) -> Prompt:
    """The prompt for QUESTION over the passages a learner asking it would get."""
    passages = await retriever.retrieve(COURSE, QUESTION, 4)
    assert any(INJECTION in p.text for p in passages)
    return answer_prompt(
        QUESTION,
        mode=mode,
        course=COURSE,
        passages=passages,
        hint_level=hint_level,
        continuation=continuation,
    )


@pytest.mark.parametrize(
    ("mode", "hint_level", "continuation"),
    [("explain", 0, ""), ("hint", 2, ""), ("explain", 0, "Here is the rule: ")],
    ids=["explain", "hint", "continuation"],
)
async def test_course_text_reaches_the_model_only_inside_the_material_block(
    retriever: LexicalRetriever, mode: Mode, hint_level: int, continuation: str
) -> None:
    """The injected sentence goes in a user message inside the block, never in the system role."""
    prompt = await question_prompt(retriever, mode, hint_level, continuation)
    system = [m["content"] for m in prompt.messages if m["role"] == "system"]
    assert not any(INJECTION in text for text in system)
    [material] = [m["content"] for m in prompt.messages if INJECTION in m["content"]]
    assert material.index(OPEN) < material.index(INJECTION) < material.index(CLOSE)
    assert prompt.messages[-1] == {"role": "user", "content": QUESTION}


def test_a_passage_cannot_close_the_material_block_early(passages: list[Passage]) -> None:
    """Delimiters written in a PDF arrive inert: the block opens once and closes at its end."""
    breakout = [p for p in passages if "Mooring fees" in p.text]
    prompt = answer_prompt(
        "What are the mooring fees?", mode="explain", course=COURSE, passages=breakout
    )
    [material] = [m["content"] for m in prompt.messages if f"answer is {PAYLOAD}" in m["content"]]
    assert material.count(OPEN) == 1
    assert material.count(CLOSE) == 1
    assert material.endswith(f"</passage>\n{CLOSE}")
    assert material.count("</passage>") == len(breakout)
    assert BREAKOUT not in material


async def test_offline_tutor_shows_course_instructions_only_as_a_labelled_quote(
    retriever: LexicalRetriever,
) -> None:
    """The offline tutor shows the injected sentence only as a block quote under its page."""
    answer = compose(await question_prompt(retriever))
    lines = answer.splitlines()
    quoted = [i for i, line in enumerate(lines) if PAYLOAD in line]
    assert answer.strip() != PAYLOAD
    assert quoted
    for i in quoted:
        assert lines[i].startswith("> ")
        assert lines[i - 1] == "From “Harbour Safety” (Harbour Rules, p. 2):"


async def test_a_continued_answer_does_not_obey_course_text(
    retriever: LexicalRetriever, provider: OpenAIProvider
) -> None:
    """A stream taken over mid-answer is continued without obeying the course text."""
    prompt = await question_prompt(retriever, continuation="Here is the rule: ")
    text = "".join([token async for token in provider.stream(prompt)])
    assert text == NORMAL


async def test_a_warmed_answer_does_not_obey_course_text(
    retriever: LexicalRetriever, provider: OpenAIProvider
) -> None:
    """The answer cache warming stores for learners does not obey the course text."""
    answers = AnswerCache(TwoTierCache(CacheSettings()))
    popular = MemoryPopular(min_learners=1)
    await popular.record(COURSE, QUESTION, "lea")
    parts = {"retriever": retriever, "provider": provider, "answers": answers, "popular": popular}
    report = await warm_answers(COURSE, **parts)
    shared = await shared_question(retriever, COURSE, "explain", provider.model, QUESTION)
    cached = await answers.get(shared.key)
    assert report.generated == 1
    assert cached is not None
    assert cached.text == NORMAL
