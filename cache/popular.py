"""The questions a course's learners ask most, and which of them may be shown to other learners.

Only questions whose answers may be shared (see :mod:`cache.answers`) are
counted, under their normalised form; the first wording seen is kept for
display. Typing predictions show these wordings to other learners and cache
warming answers them, so :meth:`PopularQuestions.top` lists a question only
when it is *shared*, that is when it identifies no one:

- at least ``min_learners`` distinct learners asked it, in its normalised form;
- it holds no personal data (:func:`core.text.has_personal_data`): such a
  question is not even counted;
- no instructor removed it (:meth:`PopularQuestions.remove`); a removed
  question stays removed, asking it again does not count it again.

Each course keeps at most ``max_questions``: the least asked are dropped when
the count grows past it. Per question at most ``min_learners`` learners are
remembered, as digests of their user ids: enough to know the rule is met.

:class:`RedisPopular` keeps, per course, a sorted set of counts
(:func:`~core.keys.popular_counts`), a hash of wordings
(:func:`~core.keys.popular_wordings`), a hash of learner digests
(:func:`~core.keys.popular_learners`) and a set of removed questions
(:func:`~core.keys.popular_removed`), shared by every pod and the workers;
:class:`MemoryPopular` is the embedded default.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from cache.codec import digest
from core import keys
from core.text import has_personal_data, normalise

MAX_QUESTIONS = 2_000
MIN_LEARNERS = 5
# Removed questions kept per course; removing more is refused.
MAX_REMOVED = 10_000
# Pruning runs once every this many records per course, not on every ask.
_PRUNE_EVERY = 200
# Questions read per round trip while looking for shared ones.
_PAGE = 256

_RECORD = """
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return 0 end
redis.call('ZINCRBY', KEYS[1], 1, ARGV[1])
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
local who = redis.call('HGET', KEYS[3], ARGV[1]) or ''
local size = #ARGV[3]
if #who >= tonumber(ARGV[4]) * size then return 1 end
for i = 1, #who, size do
  if string.sub(who, i, i + size - 1) == ARGV[3] then return 1 end
end
redis.call('HSET', KEYS[3], ARGV[1], who .. ARGV[3])
return 1
"""

_PRUNE = """
local n = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if n <= 0 then return 0 end
local dropped = redis.call('ZRANGE', KEYS[1], 0, n - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1)
for i = 1, #dropped do
  redis.call('HDEL', KEYS[2], dropped[i])
  redis.call('HDEL', KEYS[3], dropped[i])
end
return n
"""


class PopularQuestions(Protocol):
    """Counts of the questions asked in each course, and the shared ones among them."""

    async def record(self, course: str, question: str, user: str) -> None:
        """Count one ask of ``question`` in ``course`` by the learner ``user``."""
        ...

    async def top(self, course: str, n: int) -> list[tuple[str, int]]:
        """The ``n`` most asked shared questions of ``course`` and their counts, most first."""
        ...

    async def remove(self, course: str, question: str) -> bool:
        """Stop sharing ``question`` for good; False when the course's removed list is full."""
        ...


def _countable(question: str) -> str:
    """The normalised question to count, or "" when it must not be counted at all."""
    key = normalise(question)
    if not key or has_personal_data(question) or has_personal_data(key):
        return ""
    return key


def _learner(user: str) -> str:
    """What is kept of a learner: a fixed-length digest of the user id."""
    return digest("learner", user)


_LEARNER_CHARS = len(_learner(""))


class MemoryPopular:
    """Counts in process (embedded mode)."""

    def __init__(
        self, max_questions: int = MAX_QUESTIONS, min_learners: int = MIN_LEARNERS
    ) -> None:
        self._max = max_questions
        self._min = min_learners
        self._counts: dict[str, Counter[str]] = {}
        self._wording: dict[str, dict[str, str]] = {}
        self._learners: dict[str, dict[str, set[str]]] = {}
        self._removed: dict[str, set[str]] = {}

    async def record(self, course: str, question: str, user: str) -> None:
        """Count one ask."""
        key = _countable(question)
        if not key or key in self._removed.get(course, ()):
            return
        counts = self._counts.setdefault(course, Counter())
        wording = self._wording.setdefault(course, {})
        learners = self._learners.setdefault(course, {})
        counts[key] += 1
        wording.setdefault(key, question.strip())
        who = learners.setdefault(key, set())
        if len(who) < self._min:
            who.add(_learner(user))
        if len(counts) > self._max + _PRUNE_EVERY:
            kept = dict(counts.most_common(self._max))
            self._counts[course] = Counter(kept)
            self._wording[course] = {k: wording[k] for k in kept}
            self._learners[course] = {k: learners[k] for k in kept}

    async def top(self, course: str, n: int) -> list[tuple[str, int]]:
        """The most asked shared questions."""
        wording = self._wording.get(course, {})
        learners = self._learners.get(course, {})
        shared: list[tuple[str, int]] = []
        for key, count in self._counts.get(course, Counter()).most_common():
            if len(shared) >= n:
                break
            text = wording.get(key, key)
            if len(learners.get(key, ())) >= self._min and not has_personal_data(text):
                shared.append((text, count))
        return shared

    async def remove(self, course: str, question: str) -> bool:
        """Forget ``question`` and never count it again."""
        key = normalise(question)
        removed = self._removed.setdefault(course, set())
        if key in removed:
            return True
        if len(removed) >= MAX_REMOVED:
            return False
        removed.add(key)
        self._counts.get(course, Counter()).pop(key, None)
        self._wording.get(course, {}).pop(key, None)
        self._learners.get(course, {}).pop(key, None)
        return True


class RedisPopular:
    """Counts in Redis, shared by every pod and worker."""

    def __init__(
        self, redis: Any, max_questions: int = MAX_QUESTIONS, min_learners: int = MIN_LEARNERS
    ) -> None:
        self._redis = redis
        self._max = max_questions
        self._min = min_learners
        self._record = redis.register_script(_RECORD)
        self._prune = redis.register_script(_PRUNE)
        self._since_prune: Counter[str] = Counter()

    @staticmethod
    def _keys(course: str) -> list[str]:
        return [
            keys.popular_counts(course),
            keys.popular_wordings(course),
            keys.popular_learners(course),
            keys.popular_removed(course),
        ]

    async def record(self, course: str, question: str, user: str) -> None:
        """Count one ask (one round trip, atomic; pruning now and then)."""
        key = _countable(question)
        if not key:
            return
        names = self._keys(course)
        await self._record(keys=names, args=[key, question.strip(), _learner(user), self._min])
        self._since_prune[course] += 1
        if self._since_prune[course] >= _PRUNE_EVERY:
            self._since_prune[course] = 0
            await self._prune(keys=names[:3], args=[self._max])

    async def top(self, course: str, n: int) -> list[tuple[str, int]]:
        """The most asked shared questions, read a page at a time."""
        counts, wordings, learners, _ = self._keys(course)
        enough = self._min * _LEARNER_CHARS
        shared: list[tuple[str, int]] = []
        start = 0
        while len(shared) < n:
            ranked = await self._redis.zrevrange(counts, start, start + _PAGE - 1, withscores=True)
            if not ranked:
                break
            start += _PAGE
            asked = [key for key, _ in ranked]
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hmget(learners, asked)
                pipe.hmget(wordings, asked)
                who, wording = await pipe.execute()
            for (key, score), seen, text in zip(ranked, who, wording, strict=True):
                text = text or key
                if seen and len(seen) >= enough and not has_personal_data(text):
                    shared.append((text, int(score)))
        return shared[:n]

    async def remove(self, course: str, question: str) -> bool:
        """Forget ``question`` and never count it again (one transaction)."""
        key = normalise(question)
        counts, wordings, learners, removed = self._keys(course)
        full = await self._redis.scard(removed) >= MAX_REMOVED
        if full and not await self._redis.sismember(removed, key):
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(removed, key)
            pipe.zrem(counts, key)
            pipe.hdel(wordings, key)
            pipe.hdel(learners, key)
            await pipe.execute()
        return True
