"""The offline tutor: deterministic answers composed from passages."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from core.retrieval import Passage
from core.settings import LLMSettings
from knowledge.demo_course import DEMO_COURSE, demo_retriever
from tutor.llm import Prompt
from tutor.llm_offline import OfflineProvider, compose
from tutor.prompts import build

QUESTION = "What makes an argument valid?"
# The sentence of VALIDITY that shares most words with QUESTION.
KEY_SENTENCE = "A valid argument cannot have true premises and a false conclusion."
VALIDITY = Passage(
    "Logic Notes",
    2,
    "Validity",
    f"Validity is about form. {KEY_SENTENCE} Soundness adds true premises.",
)
CAUSATION = Passage(
    "Logic Notes",
    5,
    "Causation",
    "Correlation does not prove causation. A third factor may explain both.",
)
FALLACIES = Passage(
    "Logic Notes",
    7,
    "Fallacies",
    "A straw man misrepresents a view. An ad hominem attacks the person.",
)


@pytest.fixture
def provider() -> OfflineProvider:
    return OfflineProvider(LLMSettings(offline_pace_ms=0))


def prompt(**changes: Any) -> Prompt:
    """A prompt over the three passages, with ``changes``."""
    args: dict[str, Any] = {
        "question": QUESTION,
        "mode": "explain",
        "course": "logic",
        "passages": [VALIDITY, CAUSATION, FALLACIES],
        "history": [],
        "hint_level": 0,
    }
    return build(**(args | changes))


async def tokens(provider: OfflineProvider, p: Prompt) -> list[str]:
    """Every token the provider streams for ``p``."""
    return [token async for token in provider.stream(p)]


def test_names_itself_offline(provider: OfflineProvider) -> None:
    """The provider and its model are both reported as offline."""
    assert provider.name == "offline"
    assert provider.model == "offline"


def test_explain_cites_each_passage_page() -> None:
    """An explain answer cites the document and page of every passage it uses."""
    answer = compose(prompt())
    for passage in (VALIDITY, CAUSATION, FALLACIES):
        assert f"(Logic Notes, p. {passage.page})" in answer
        assert passage.heading in answer


def test_explain_quotes_the_key_sentence() -> None:
    """An explain answer quotes the top passage's sentence that matches the question."""
    assert KEY_SENTENCE in compose(prompt())


def test_explain_is_deterministic() -> None:
    """Two equal prompts, built separately, give the same answer."""
    assert compose(prompt()) == compose(prompt())


def test_explain_points_to_the_top_page() -> None:
    """The answer ends by pointing to the first passage's page."""
    assert compose(prompt()).endswith("read page 2, “Validity”.")


@pytest.mark.parametrize("level", [0, 1, 2, 5])
def test_hint_never_states_the_key_sentence(level: int) -> None:
    """At no level does a hint quote the whole key sentence of the top passage."""
    assert KEY_SENTENCE not in compose(prompt(mode="hint", hint_level=level))


def test_hint_level_zero_points_to_the_page_only() -> None:
    """The first hint points to the top passage's page, with no start of the answer."""
    hint = compose(prompt(mode="hint", hint_level=0))
    assert "(Logic Notes, p. 2)" in hint
    assert "A valid argument" not in hint
    assert "A start" not in hint


def test_hint_level_one_adds_a_partial_start() -> None:
    """The second hint adds the first half of the key sentence to finish."""
    hint = compose(prompt(mode="hint", hint_level=1))
    assert "“A valid argument cannot have …”" in hint


def test_hint_level_two_mentions_the_second_passage() -> None:
    """The third hint also points to the second passage; earlier hints do not."""
    assert "(Logic Notes, p. 5)" not in compose(prompt(mode="hint", hint_level=1))
    hint = compose(prompt(mode="hint", hint_level=2))
    assert "(Logic Notes, p. 5)" in hint
    assert "Causation" in hint


def test_hint_level_two_with_one_passage() -> None:
    """With a single passage the third hint does not invent a second one."""
    hint = compose(prompt(mode="hint", hint_level=2, passages=[VALIDITY]))
    assert "Compare with" not in hint
    assert "A start" in hint


async def test_hint_key_terms_are_words_of_the_passage() -> None:
    """The key terms a hint lists are whole words that appear in the top passage."""
    question = "Does correlation imply causation?"
    passages = await demo_retriever().retrieve(DEMO_COURSE, question, 4)
    hint = compose(prompt(question=question, mode="hint", passages=passages))
    match = re.search(r"key terms there: (.+?)\. What", hint)
    assert match is not None
    words = set(re.findall(r"[a-z]+", passages[0].text.lower()))
    listed = match.group(1).split(", ")
    assert [term for term in listed if term not in words] == []


@pytest.mark.parametrize("mode", ["explain", "hint"])
def test_no_passages_says_it_could_not_find_it(mode: str) -> None:
    """Without passages the answer says so and names the course."""
    answer = compose(prompt(mode=mode, passages=[]))
    assert "could not find" in answer
    assert "“logic”" in answer
    assert "p. " not in answer


@pytest.mark.parametrize("mode", ["explain", "hint"])
async def test_tokens_join_to_the_composed_answer(provider: OfflineProvider, mode: str) -> None:
    """The streamed tokens, joined, are exactly compose(prompt)."""
    p = prompt(mode=mode, hint_level=2)
    streamed = await tokens(provider, p)
    assert "".join(streamed) == compose(p)


async def test_streams_word_by_word(provider: OfflineProvider) -> None:
    """The answer arrives as many tokens, each holding at most one word."""
    streamed = await tokens(provider, prompt())
    assert len(streamed) > 10
    assert all(len(token.split()) <= 1 for token in streamed)


async def test_no_passages_answer_is_streamed(provider: OfflineProvider) -> None:
    """The could-not-find answer streams like any other."""
    p = prompt(passages=[])
    assert "".join(await tokens(provider, p)) == compose(p)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.33, 0.5, 0.97, 1.0])
@pytest.mark.parametrize("mode", ["explain", "hint"])
async def test_continuation_yields_the_rest(
    provider: OfflineProvider, mode: str, fraction: float
) -> None:
    """With part of the answer already sent, the stream yields exactly the remainder."""
    p = prompt(mode=mode, hint_level=1)
    full = compose(p)
    sent = full[: int(len(full) * fraction)]
    rest = "".join(await tokens(provider, dataclasses.replace(p, continuation=sent)))
    assert sent + rest == full
