"""One generation path: the prompt for a question, and its tokens from a provider.

The pipeline (:mod:`tutor.pipeline`) streams what this yields to learners;
cache warming (:mod:`tutor.warming`) stores it. Both build the prompt and
the answer cache key here, so a warmed answer is exactly the one a learner's
ask would have produced and looks up.

A question the course does not cover (the retriever marked its best passage
``covers=False``: below the calibrated relevance threshold) gets
:func:`not_covered_answer` in explain mode, from the model path and the
offline tutor alike: it says so and names the nearest pages, instead of
explaining from an unrelated page.

An answer shared between learners is generated from a :class:`SharedQuestion`
alone: its prompt (:func:`shared_prompt`) reads only the fields the cache key
hashes, and passages retrieved for them, never a learner's history, hint
level or name. So the key covers exactly what the model saw, and nothing one
learner said can reach another through the cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cache.answers import normalised_answer_key
from core.retrieval import Passage, Retriever
from core.text import normalise
from realtime.protocol import Mode
from store.store import MessageRecord
from tutor import prompts
from tutor.llm import LLMProvider, Prompt

_SPACES = re.compile(r"\s+")
# Course text stands between “ and ”: its own curly quotes are straightened.
_STRAIGHT = str.maketrans({"“": '"', "”": '"'})


def not_covered(passages: Sequence[Passage]) -> bool:
    """True when passages were found but the best of them does not answer the question."""
    return bool(passages) and not passages[0].covers


def not_covered_answer(course: str, passages: Sequence[Passage]) -> str:
    """The answer to a question the course does not cover: say so, name the nearest pages."""
    lines = [
        f"The material of course “{_inline(course)}” does not cover this question, so I will "
        "not answer it from a page about something else.",
        "",
        "The nearest pages, in case they help:",
    ]
    seen: set[tuple[str, int]] = set()
    for p in passages:
        if (p.document, p.page) in seen:
            continue
        seen.add((p.document, p.page))
        lines.append(f"- p. {p.page}, “{_inline(p.heading)}” ({_inline(p.document)})")
    lines += ["", "Ask your teacher about it, or ask again in the words the course uses."]
    return "\n".join(lines)


def _inline(text: str) -> str:
    return _SPACES.sub(" ", text).strip().translate(_STRAIGHT)


def answer_prompt(
    question: str,
    *,
    mode: Mode,
    course: str,
    passages: list[Passage],
    history: Sequence[MessageRecord] = (),
    hint_level: int = 0,
    continuation: str = "",
    rung_rule: str = "",
    problem: str = "",
) -> Prompt:
    """The prompt that answers ``question`` from ``passages`` (and the learner's history)."""
    return prompts.build(
        question=question,
        mode=mode,
        course=course,
        passages=passages,
        history=list(history),
        hint_level=hint_level,
        continuation=continuation,
        rung_rule=rung_rule,
        problem=problem,
    )


@dataclass(frozen=True, slots=True)
class SharedQuestion:
    """A question whose answer is shared: everything its prompt is built from, and its key."""

    course: str
    index_version: str
    mode: Mode
    model: str
    # Normalised: what every learner asking it alike has in common.
    question: str

    @property
    def key(self) -> str:
        """The answer cache key: a hash of every field, exactly as the prompt uses them."""
        return normalised_answer_key(
            self.course, self.index_version, self.mode, self.model, self.question
        )

    async def passages(self, retriever: Retriever, top_k: int) -> list[Passage]:
        """The course passages for the shared question."""
        return await retriever.retrieve(self.course, self.question, top_k)

    def prompt(self, passages: list[Passage]) -> Prompt:
        """The prompt: the question and its passages, with no history and hint level 0."""
        return answer_prompt(self.question, mode=self.mode, course=self.course, passages=passages)


async def shared_question(
    retriever: Retriever, course: str, mode: Mode, model: str, question: str
) -> SharedQuestion:
    """``question`` as shared in ``course`` under the course's current index version."""
    version = await retriever.index_version(course)
    return SharedQuestion(course, version, mode, model, normalise(question))


async def generate(provider: LLMProvider, prompt: Prompt, on_token: Callable[[str], None]) -> None:
    """Stream ``prompt`` through ``provider``, handing each token to ``on_token``.

    The upstream stream is closed however this ends (finished, failed,
    cancelled, timed out), so no HTTP stream is left open to the model.
    """
    tokens = provider.stream(prompt)
    try:
        async for token in tokens:
            on_token(token)
    finally:
        await tokens.aclose()
