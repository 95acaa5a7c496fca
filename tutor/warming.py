"""Warming the answer cache with the answers to a course's most asked questions.

After a course is re-indexed its cached answers retire (the index version is
in their key); learners coming back would each wait for a fresh answer to
the same popular questions. :func:`warm_answers` generates those answers
ahead of them, once, and stores them under the new version. Questions whose
answer is already cached are skipped, so running it on a schedule costs a
model call only for what is missing.

Only shared questions are warmed (:meth:`cache.popular.PopularQuestions.top`
lists no other: asked alike by enough learners, no personal data, not
removed by an instructor), and each is answered exactly as a learner's
shared ask would be: from the :class:`~tutor.generation.SharedQuestion` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from cache.answers import AnswerCache
from cache.popular import PopularQuestions
from core.errors import CircuitOpen, LLMError
from core.retrieval import Retriever
from tutor.citations import answer_sources
from tutor.generation import generate, not_covered, shared_question
from tutor.llm import LLMProvider

log = structlog.get_logger("livetutor.cache")


@dataclass(slots=True)
class WarmReport:
    """What one warming run did."""

    course: str
    generated: int = 0
    already_cached: int = 0
    failed: int = 0
    too_large: int = 0


async def warm_answers(
    course: str,
    *,
    retriever: Retriever,
    provider: LLMProvider,
    answers: AnswerCache,
    popular: PopularQuestions,
    limit: int = 50,
    top_k: int = 4,
) -> WarmReport:
    """Generate and cache the answers to the ``limit`` most asked questions of ``course``."""
    report = WarmReport(course)
    if course not in retriever.courses():
        return report
    for question, _count in await popular.top(course, limit):
        shared = await shared_question(retriever, course, "explain", provider.model, question)
        if await answers.get(shared.key) is not None:
            report.already_cached += 1
            continue
        passages = await shared.passages(retriever, top_k)
        if not_covered(passages):
            # The ask itself answers "not covered" without a model; nothing to warm.
            continue
        prompt = shared.prompt(passages)
        parts: list[str] = []
        try:
            await generate(provider, prompt, parts.append)
        except CircuitOpen:
            # The model is failing: stop here rather than try every question.
            report.failed += 1
            log.warning("cache.warm_stopped", course=course, reason="circuit open")
            break
        except LLMError as exc:
            report.failed += 1
            log.warning("cache.warm_failed", course=course, error=type(exc).__name__)
            continue
        sources = answer_sources(passages, "".join(parts))
        if await answers.put(shared.key, "".join(parts), sources, provider.model):
            report.generated += 1
        else:
            report.too_large += 1
    log.info(
        "cache.warmed",
        course=course,
        generated=report.generated,
        already_cached=report.already_cached,
        failed=report.failed,
    )
    return report
