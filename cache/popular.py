"""The questions a course's learners ask most: counted per course, for warming the cache.

Only questions whose answers may be shared (see :mod:`cache.answers`) are
counted, under their normalised form; the first wording seen is kept for
display (typing predictions show it). Each course keeps at most
``max_questions``: the least asked are dropped when the count grows past it.

:class:`RedisPopular` keeps a sorted set per course
(:func:`~core.keys.popular_counts`) plus a hash of wordings
(:func:`~core.keys.popular_wordings`), shared by every pod and
the workers; :class:`MemoryPopular` is the embedded default.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from core import keys
from core.text import normalise

MAX_QUESTIONS = 2_000
# Pruning runs once every this many records per course, not on every ask.
_PRUNE_EVERY = 200

_PRUNE = """
local n = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if n <= 0 then return 0 end
local dropped = redis.call('ZRANGE', KEYS[1], 0, n - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1)
for i = 1, #dropped do redis.call('HDEL', KEYS[2], dropped[i]) end
return n
"""


class PopularQuestions(Protocol):
    """Counts of the questions asked in each course."""

    async def record(self, course: str, question: str) -> None:
        """Count one ask of ``question`` in ``course``."""
        ...

    async def top(self, course: str, n: int) -> list[tuple[str, int]]:
        """The ``n`` most asked questions of ``course`` with their counts, most asked first."""
        ...


class MemoryPopular:
    """Counts in process (embedded mode)."""

    def __init__(self, max_questions: int = MAX_QUESTIONS) -> None:
        self._max = max_questions
        self._counts: dict[str, Counter[str]] = {}
        self._wording: dict[str, dict[str, str]] = {}

    async def record(self, course: str, question: str) -> None:
        """Count one ask."""
        key = normalise(question)
        if not key:
            return
        counts = self._counts.setdefault(course, Counter())
        wording = self._wording.setdefault(course, {})
        counts[key] += 1
        wording.setdefault(key, question.strip())
        if len(counts) > self._max + _PRUNE_EVERY:
            kept = dict(counts.most_common(self._max))
            self._counts[course] = Counter(kept)
            self._wording[course] = {k: wording[k] for k in kept}

    async def top(self, course: str, n: int) -> list[tuple[str, int]]:
        """The most asked questions."""
        counts = self._counts.get(course, Counter())
        wording = self._wording.get(course, {})
        return [(wording.get(k, k), c) for k, c in counts.most_common(n)]


class RedisPopular:
    """Counts in Redis sorted sets, shared by every pod and worker."""

    def __init__(self, redis: Any, max_questions: int = MAX_QUESTIONS) -> None:
        self._redis = redis
        self._max = max_questions
        self._prune = redis.register_script(_PRUNE)
        self._since_prune: Counter[str] = Counter()

    async def record(self, course: str, question: str) -> None:
        """Count one ask (one round trip; pruning now and then)."""
        key = normalise(question)
        if not key:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zincrby(keys.popular_counts(course), 1, key)
            pipe.hsetnx(keys.popular_wordings(course), key, question.strip())
            await pipe.execute()
        self._since_prune[course] += 1
        if self._since_prune[course] >= _PRUNE_EVERY:
            self._since_prune[course] = 0
            await self._prune(
                keys=[keys.popular_counts(course), keys.popular_wordings(course)], args=[self._max]
            )

    async def top(self, course: str, n: int) -> list[tuple[str, int]]:
        """The most asked questions."""
        ranked = await self._redis.zrevrange(keys.popular_counts(course), 0, n - 1, withscores=True)
        if not ranked:
            return []
        wordings = await self._redis.hmget(
            keys.popular_wordings(course), [key for key, _ in ranked]
        )
        return [
            (wording or key, int(score))
            for (key, score), wording in zip(ranked, wordings, strict=True)
        ]
