"""Cache warming in a worker: the answers to each course's most asked questions.

Run by the ``regenerate_cache`` task after a document is indexed (its course's
answers were just retired by the new index version) and on beat's schedule
(``LIVETUTOR_CACHE_WARM_INTERVAL_S``) for every course. The worker reads the
same vector store, question counts (Redis) and L2 cache (Redis) as the pods,
and asks the same model, so the answers it stores are the ones a pod would
look up.
"""

from __future__ import annotations

from cache.answers import AnswerCache
from cache.popular import RedisPopular
from cache.redis_tier import RedisTier
from cache.two_tier import TwoTierCache
from core.redis_link import connect
from core.settings import Settings
from knowledge.demo_course import demo_retriever
from knowledge.ingest import Ingest
from knowledge.retriever import CourseRetriever
from tutor.providers import create_provider
from tutor.warming import WarmReport, warm_answers


async def regenerate(settings: Settings, ingest: Ingest, course: str | None) -> list[WarmReport]:
    """Warm one course, or every course when ``course`` is None."""
    if not (settings.cache.enabled and settings.cache.answers):
        return []
    client = connect(settings.redis)
    provider = create_provider(settings)
    retriever = CourseRetriever(ingest.kb, ingest.embedder, ingest.lexical, demo=demo_retriever())
    try:
        await provider.start()
        await retriever.refresh()
        answers = AnswerCache(TwoTierCache(settings.cache, RedisTier(client)))
        popular = RedisPopular(client, min_learners=settings.tutor.popular_min_learners)
        courses = [course] if course else retriever.courses()
        return [
            await warm_answers(
                name,
                retriever=retriever,
                provider=provider,
                answers=answers,
                popular=popular,
                limit=settings.cache.warm_questions,
                top_k=settings.tutor.top_k,
            )
            for name in courses
        ]
    finally:
        retriever.close()
        await provider.aclose()
        await client.aclose()
