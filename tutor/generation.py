"""One generation path: the prompt for a question, and its tokens from a provider.

The pipeline (:mod:`tutor.pipeline`) streams what this yields to learners;
cache warming (:mod:`tutor.warming`) stores it. Both build the prompt and
the answer cache key here, so a warmed answer is exactly the one a learner's
ask would have produced and looks up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cache.answers import answer_key
from core.retrieval import Passage, Retriever
from realtime.protocol import Mode
from store.store import MessageRecord
from tutor import prompts
from tutor.llm import LLMProvider, Prompt


def answer_prompt(
    question: str,
    *,
    mode: Mode,
    course: str,
    passages: list[Passage],
    history: Sequence[MessageRecord] = (),
    hint_level: int = 0,
    continuation: str = "",
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
    )


async def shared_answer_key(
    retriever: Retriever, course: str, mode: Mode, model: str, question: str
) -> str:
    """The answer cache key of ``question`` under the course's current index version."""
    version = await retriever.index_version(course)
    return answer_key(course, version, mode, model, question)


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
