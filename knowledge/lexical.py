"""A small lexical retriever: BM25 (k1=1.5, b=0.75) over passages held in memory.

Enough for a course of a few pages (the bundled demo course); the knowledge
layer's :class:`~knowledge.retriever.CourseRetriever` uses it beside the
vector store.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, replace

from core.retrieval import Passage
from core.text import terms


@dataclass(frozen=True, slots=True)
class _Doc:
    passage: Passage
    tf: Counter[str]
    length: int


class LexicalRetriever:
    """BM25 over the passages of a few small courses held in memory."""

    def __init__(self, passages_by_course: dict[str, list[Passage]]) -> None:
        self._docs: dict[str, list[_Doc]] = {}
        self._idf: dict[str, dict[str, float]] = {}
        self._avg: dict[str, float] = {}
        self._versions: dict[str, str] = {}
        for course, passages in passages_by_course.items():
            digest = hashlib.blake2b(digest_size=8)
            for p in passages:
                digest.update(
                    f"{p.document}\0{p.document_id}\0{p.page}\0{p.heading}\0{p.text}\0".encode()
                )
            self._versions[course] = digest.hexdigest()
            docs = [_Doc(p, Counter(terms(p.heading + " " + p.text)), 0) for p in passages]
            docs = [_Doc(d.passage, d.tf, sum(d.tf.values())) for d in docs]
            df: Counter[str] = Counter()
            for d in docs:
                df.update(d.tf.keys())
            n = len(docs)
            self._docs[course] = docs
            self._idf[course] = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
            self._avg[course] = sum(d.length for d in docs) / max(n, 1)

    def courses(self) -> list[str]:
        """Course ids this retriever knows."""
        return sorted(self._docs)

    async def index_version(self, course: str) -> str:
        """A hash of the course's passages: it changes only when their text does."""
        return self._versions.get(course, "")

    async def retrieve(self, course: str, question: str, k: int) -> list[Passage]:
        """Up to ``k`` passages of ``course`` sharing words with the question, best first."""
        docs = self._docs.get(course)
        if not docs:
            return []
        idf, avg = self._idf[course], self._avg[course]
        query = set(terms(question))
        scored = []
        for d in docs:
            score = 0.0
            for t in query:
                f = d.tf.get(t)
                if f:
                    score += idf[t] * f * 2.5 / (f + 1.5 * (0.25 + 0.75 * d.length / avg))
            if score > 0:
                scored.append((score, d.passage))
        scored.sort(key=lambda item: item[0], reverse=True)
        return [replace(p, score=score) for score, p in scored[:k]]
