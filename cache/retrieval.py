"""Retrieval results cached per course index version.

:class:`CachedRetriever` wraps any :class:`core.retrieval.Retriever`: the
same question (normalised) in the same course at the same index version gets
the same passages without searching again. Re-indexing changes the version,
so stale results are never served.
"""

from __future__ import annotations

from cache.codec import Namespace, digest
from cache.two_tier import TwoTierCache
from core.retrieval import Passage, Retriever
from core.text import normalise

RETRIEVAL: Namespace[list[Passage]] = Namespace("retrieval", list[Passage])


class CachedRetriever:
    """A :class:`Retriever` whose results go through the two-tier cache."""

    def __init__(self, inner: Retriever, cache: TwoTierCache) -> None:
        self.inner = inner
        self._cache = cache

    def courses(self) -> list[str]:
        """Course ids the wrapped retriever knows."""
        return self.inner.courses()

    async def index_version(self, course: str) -> str:
        """The wrapped retriever's index version."""
        return await self.inner.index_version(course)

    async def retrieve(self, course: str, question: str, k: int) -> list[Passage]:
        """Cached passages, or the wrapped retriever's (then cached)."""
        version = await self.inner.index_version(course)
        return await self._cache.get_or_load(
            RETRIEVAL,
            digest(course, version, str(k), normalise(question)),
            lambda: self.inner.retrieve(course, question, k),
        )
