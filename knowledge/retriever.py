"""The course retriever: chromadb vector search, fused with a lexical ranking.

Each course has its own collections, so a question in one course can never
reach another course's chunks. With hybrid ranking on, each chunk is also
stored under the hashing embedder; a question is answered from both rankings
fused by score: each candidate's semantic cosine weighs ``SEMANTIC_WEIGHT``
(0.5) and its lexical cosine the rest, so exact terms (names, jargon) that a
small semantic model blurs and paraphrases that words alone miss both count,
and how close the best passage comes is kept as a number. A candidate only one
ranking returned gets, for the other, the lowest cosine that ranking returned
(its own can be no higher). Near-duplicate chunks (the overlap between
neighbours, repeated boilerplate) are dropped from the answer so the ``k``
passages say ``k`` different things. A misspelled rare word of the question
(:func:`knowledge.relevance.rare_words`) is added as the candidates spell it,
and the lexical ranking asked again.

Relevance: with the default ranking (MiniLM fused with the lexical one) a
passage's score is that fused cosine, less ``RARE_WORD_PENALTY`` when the
question names a rare word none of the candidates uses
(:mod:`knowledge.relevance`). Passages scoring below ``NOT_COVERED_BELOW`` are
marked ``covers=False``: when the first one is, the course does not cover the
question and the tutor says so. The three numbers were calibrated on the
tuning part of ``bench/learner_questions.py`` (see docs/knowledge.md); other
rankings are not calibrated and mark every passage as covering.

The bundled demo course keeps its in-memory BM25 retriever until a document
is uploaded to a course named ``demo``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from core.retrieval import Passage
from core.text import terms
from knowledge.embedders import Embedder, MiniLMEmbedder
from knowledge.lexical import LexicalRetriever
from knowledge.relevance import rare_words
from knowledge.vectors import Hit, KnowledgeBase

# Fused score = SEMANTIC_WEIGHT * semantic cosine + (1 - SEMANTIC_WEIGHT) * lexical cosine.
SEMANTIC_WEIGHT = 0.5
# Calibrated on the tuning part of bench/learner_questions.py (docs/knowledge.md): the
# highest threshold that still judges 95 % of the questions whose page is found covered.
NOT_COVERED_BELOW = 0.246
RARE_WORD_PENALTY = 0.15
# Chunks sharing this share of their word pairs say the same thing.
NEAR_DUPLICATE = 0.6
_VERSION_TTL_S = 1.0
_VECTOR_CACHE = 512


def _shingles(text: str) -> set[str]:
    words = terms(text)
    return {f"{a} {b}" for a, b in itertools.pairwise(words)} or set(words)


def fuse_scores(semantic: list[Hit], lexical: list[Hit]) -> list[tuple[float, Hit]]:
    """Both rankings' candidates by weighted cosine, best first.

    A candidate missing from one ranking gets that ranking's lowest cosine.
    """
    cosines: list[dict[str, float]] = []
    hits: dict[str, Hit] = {}
    for ranking in (semantic, lexical):
        cosines.append({h.id: 1.0 - h.distance for h in ranking})
        for h in ranking:
            hits.setdefault(h.id, h)
    floors = [min(c.values(), default=0.0) for c in cosines]
    scored = [
        (
            SEMANTIC_WEIGHT * cosines[0].get(i, floors[0])
            + (1 - SEMANTIC_WEIGHT) * cosines[1].get(i, floors[1]),
            hit,
        )
        for i, hit in hits.items()
    ]
    scored.sort(key=lambda item: item[0], reverse=True)
    return scored


def drop_near_duplicates(ranked: list[tuple[float, Hit]], k: int) -> list[tuple[float, Hit]]:
    """The first ``k`` hits that are not near-duplicates of a better one."""
    kept: list[tuple[float, Hit, set[str]]] = []
    for score, hit in ranked:
        shingles = _shingles(hit.text)
        duplicate = False
        for _, _, other in kept:
            union = len(shingles | other)
            if union and len(shingles & other) / union >= NEAR_DUPLICATE:
                duplicate = True
                break
        if not duplicate:
            kept.append((score, hit, shingles))
            if len(kept) == k:
                break
    return [(score, hit) for score, hit, _ in kept]


class Rankings(NamedTuple):
    """A question's candidates from each ranking, before fusion."""

    semantic: list[Hit]
    # None without hybrid ranking.
    lexical: list[Hit] | None
    # The question's rare words that no candidate uses (nor a close spelling of them).
    unknown: list[str]


class CourseRetriever:
    """Retrieval over the courses in the vector store, plus the bundled demo course."""

    def __init__(
        self,
        kb: KnowledgeBase,
        embedder: Embedder,
        lexical: Embedder | None = None,
        demo: LexicalRetriever | None = None,
        candidates: int = 24,
    ) -> None:
        self.kb = kb
        self.embedder = embedder
        self.lexical = lexical
        self._demo = demo
        self._demo_courses = frozenset(demo.courses()) if demo else frozenset()
        self._stored: frozenset[str] = frozenset()
        self._candidates = candidates
        self._versions: dict[str, tuple[float, str]] = {}
        # Recent question vectors: a repeated question skips its embedding.
        self._vectors: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="retrieval")
        self._warming = False
        # Relevance is calibrated for MiniLM fused with the lexical ranking only.
        self._calibrated = isinstance(embedder, MiniLMEmbedder) and lexical is not None

    def courses(self) -> list[str]:
        """Courses with documents, and the demo course."""
        return sorted(self._stored | self._demo_courses)

    def stored_courses(self) -> frozenset[str]:
        """Courses the vector store knows (as of the last refresh)."""
        return self._stored

    def refresh_sync(self) -> None:
        """Re-read the course list (blocking)."""
        self._stored = frozenset(self.kb.course_names())

    async def refresh(self) -> None:
        """Re-read the course list from the vector store (courses made on other pods)."""
        self._stored = frozenset(await asyncio.to_thread(self.kb.course_names))

    def add_course(self, course: str) -> None:
        """Know a course created on this pod at once."""
        self._stored = self._stored | {course}

    def forget_version(self, course: str) -> None:
        """Drop the cached index version after a change made here."""
        self._versions.pop(course, None)

    def cached_version(self, course: str) -> str:
        """The last index version read for the course (may be a second old), or empty."""
        cached = self._versions.get(course)
        return cached[1] if cached else ""

    async def index_version(self, course: str) -> str:
        """The demo's hash for the demo course; the vector store's version otherwise.

        Asked of the store even for a course this pod has not listed yet: one made a
        moment ago (its ``ready`` notice may still be on its way here) or on another pod.
        """
        if self._demo is not None and course in self._demo_courses:
            return await self._demo.index_version(course)
        cached = self._versions.get(course)
        now = time.monotonic()
        if cached is not None and now - cached[0] < _VERSION_TTL_S:
            return cached[1]
        version = await asyncio.to_thread(self.kb.course_version, course)
        if version:
            # Not an unknown course's "": the course may be created any moment.
            self._versions[course] = (now, version)
        return version

    async def retrieve(self, course: str, question: str, k: int) -> list[Passage]:
        """Up to ``k`` passages of ``course`` only, best first."""
        if course not in self._stored:
            if self._demo is not None and course in self._demo_courses:
                return await self._demo.retrieve(course, question, k)
            return []
        return await asyncio.to_thread(self.search, course, question, k)

    def _ranking(self, embedder: Embedder, course: str, question: str, n: int) -> list[Hit]:
        return self.kb.query(course, embedder.name, self._vector(embedder, question), n)

    def _vector(self, embedder: Embedder, question: str) -> list[float]:
        key = (embedder.name, question)
        with self._lock:
            vector = self._vectors.get(key)
            if vector is not None:
                self._vectors.move_to_end(key)
                return vector
        vector = embedder.embed([question])[0]
        with self._lock:
            self._vectors[key] = vector
            if len(self._vectors) > _VECTOR_CACHE:
                self._vectors.popitem(last=False)
        return vector

    def warm(self, course: str, question: str) -> bool:
        """Embed a question about to be asked, in the background; False if not worth it now.

        Called on ``typing`` for text that looks finished; when the learner sends it,
        the search skips the embedding. At most one warm-up runs at a time.
        """
        if course not in self._stored or self._warming:
            return False
        self._warming = True

        def run() -> None:
            try:
                self._vector(self.embedder, question)
            finally:
                self._warming = False

        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down
            self._warming = False
            return False
        return True

    def cached(self, question: str) -> bool:
        """Whether the question's vector is cached (for tests and diagnostics)."""
        with self._lock:
            return (self.embedder.name, question) in self._vectors

    def close(self) -> None:
        """Stop the helper threads of hybrid searches."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def rankings(
        self,
        course: str,
        question: str,
        n: int,
        *,
        vector: list[float] | None = None,
        words: str | None = None,
    ) -> Rankings:
        """Both rankings' ``n`` nearest chunks, before they are fused.

        A misspelled rare word is added to the lexical query as the candidates spell it
        (the lexical ranking is asked again); ``vector`` and ``words`` stand in for the
        question's vector and the text the lexical ranking reads, as in :meth:`search`.
        """
        words = question if words is None else words
        words_embedder = self.lexical
        lexical = None
        if words_embedder is not None:
            # Both legs release the GIL (onnxruntime, chromadb): run them side by side.
            lexical = self._pool.submit(self._ranking, words_embedder, course, words, n)
        if vector is None:
            semantic = self._ranking(self.embedder, course, question, n)
        else:
            semantic = self.kb.query(course, self.embedder.name, vector, n)
        if lexical is None or words_embedder is None:
            return Rankings(semantic, None, [])
        lexical_hits = lexical.result()
        misspelled, unknown = rare_words(
            question, (f"{h.heading} {h.text}" for h in semantic + lexical_hits)
        )
        if misspelled:
            # The lexical ranking matches exact words: ask it again, spelled as the course does.
            respelled = f"{words} {' '.join(misspelled.values())}"
            lexical_hits = self._ranking(words_embedder, course, respelled, n)
        return Rankings(semantic, lexical_hits, unknown)

    def search(
        self,
        course: str,
        question: str,
        k: int,
        *,
        vector: list[float] | None = None,
        words: str | None = None,
    ) -> list[Passage]:
        """The blocking search (also used by the benchmarks).

        ``vector`` and ``words`` stand in for the question's vector and the text the
        lexical ranking reads (``bench.query_rewrite`` measures a model's rewrite of the
        question this way); the rare-word judgement always reads the question itself.
        """
        found = self.rankings(
            course, question, max(self._candidates, k * 4), vector=vector, words=words
        )
        if found.lexical is None:
            ranked = [(1 - h.distance, h) for h in found.semantic]
        else:
            ranked = fuse_scores(found.semantic, found.lexical)
            if self._calibrated and found.unknown:
                ranked = [(score - RARE_WORD_PENALTY, hit) for score, hit in ranked]
        return [
            Passage(
                document=hit.title,
                page=hit.page,
                heading=hit.heading,
                text=hit.text,
                score=score,
                document_id=hit.document,
                title=hit.title,
                covers=not self._calibrated or score >= NOT_COVERED_BELOW,
            )
            for score, hit in drop_near_duplicates(ranked, k)
        ]
