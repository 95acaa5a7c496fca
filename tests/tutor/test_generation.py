"""The shared generation path: a shared answer's key covers exactly what the model is given."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from core.retrieval import Passage
from knowledge.demo_course import DEMO_COURSE, demo_retriever
from tutor.generation import not_covered_answer, shared_question
from tutor.llm import Prompt

RETRIEVER = demo_retriever()
BASES = st.sampled_from(
    [
        "What makes a deductive argument valid?",
        "How do I weigh evidence for a claim?",
        "What is a syllogism",
        "what is a SYLLOGISM?",
    ]
)
# The same question as learners type it differently, or any other text.
SPELLINGS = st.one_of(
    st.builds(
        lambda base, upper, spaces, end: (
            (base.upper() if upper else base).replace(" ", spaces) + end
        ),
        BASES,
        st.booleans(),
        st.sampled_from([" ", "  ", "\t", " \u3000"]),
        st.sampled_from(["", "?", "!", " ?", "\uff1f", "..."]),
    ),
    st.text(max_size=60),
)


async def shared(question: str) -> tuple[str, Prompt]:
    """The answer cache key and the prompt of ``question`` asked as a shared question."""
    q = await shared_question(RETRIEVER, DEMO_COURSE, "explain", "tutor-model", question)
    return q.key, q.prompt(await q.passages(RETRIEVER, 4))


@given(SPELLINGS, SPELLINGS)
def test_same_key_exactly_when_the_model_gets_the_same_prompt(one: str, other: str) -> None:
    """Two asks share a cache key if and only if the model would be given the same input."""

    async def both() -> tuple[tuple[str, Prompt], tuple[str, Prompt]]:
        return await shared(one), await shared(other)

    (key_one, prompt_one), (key_other, prompt_other) = asyncio.run(both())
    assert (key_one == key_other) == (prompt_one == prompt_other)


@given(SPELLINGS)
def test_a_shared_prompt_holds_nothing_of_the_learner(question: str) -> None:
    """A shared question's prompt has no history, hint level 0 and the question as its last turn."""
    _, prompt = asyncio.run(shared(question))
    assert (prompt.hint_level, prompt.continuation, prompt.mode) == (0, "", "explain")
    roles = [m["role"] for m in prompt.messages]
    # Instructions, the course material (when any matched), the question: no conversation.
    assert roles in (["system", "user"], ["system", "user", "user"])
    assert prompt.messages[-1] == {"role": "user", "content": prompt.question}


def test_not_covered_answer_names_each_nearest_page_once_in_its_own_quotes() -> None:
    """Nearest pages are listed once each; course text cannot close our quotes or add lines."""
    passages = [
        Passage("Rules", 3, "Tides\nand “moons”", "a", covers=False),
        Passage("Rules", 3, "Tides", "b", covers=False),
        Passage("Rules", 7, "Knots", "c", covers=False),
    ]
    text = not_covered_answer("harbour", passages)
    assert "does not cover this question" in text
    assert text.count("p. 3,") == 1 and "p. 7, “Knots” (Rules)" in text
    assert 'p. 3, “Tides and "moons"” (Rules)' in text
