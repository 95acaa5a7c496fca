"""The answer cache: a finished answer reused for the same question in the same course.

Key: course, the course's index version (re-indexing retires its answers
without touching Redis), mode, model, prompt version and the normalised
question. A hit is streamed as ordinary ``delta`` frames and ends with
``stream.end`` ``cached: true``.

What is shared between learners, and what is not:

- only ``explain`` answers: a ``hint`` depends on the learner's hint level
  and on where they are stuck, so hints are always generated afresh;
- only a question that stands on its own: the first question of a session,
  or a later one of at least four words with no word pointing back at the
  conversation (``it``, ``that``, ``again``, ...). "Why?" or "Can you explain
  that more simply?" mean something different in every session;
- only complete answers (reason ``stop``) from the configured model: not a
  fallback answer written while the model was down, not a cancelled,
  interrupted or taken-over one;
- only answers generated from nothing learner-specific: the prompt of a
  shared answer is built from the key's parts alone (no history, no hint
  level, no name), so the key covers exactly what the model saw
  (:class:`tutor.generation.SharedQuestion`).
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec

from cache.codec import Namespace, digest
from cache.two_tier import TwoTierCache
from core.text import normalise

# Bump when the prompts change the answers they produce: old answers retire.
PROMPT_VERSION = "2"

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Words that point back at the conversation: the question is not self-contained.
_BACK_REFERENCES = frozenset(
    {
        *("it", "its", "it's", "this", "that", "these", "those", "they", "them", "their"),
        *("he", "him", "his", "she", "her", "above", "previous", "earlier", "before"),
        *("again", "more", "else", "also", "too", "same", "other", "another", "instead"),
    }
)
_MIN_WORDS = 4


class CachedAnswer(msgspec.Struct, frozen=True):
    """A finished answer as cached."""

    text: str
    sources: list[dict[str, Any]]
    model: str
    created_at: float


ANSWERS: Namespace[CachedAnswer] = Namespace("answers", CachedAnswer)


def shareable(question: str, mode: str, *, first_in_session: bool) -> bool:
    """True when the answer to ``question`` may be taken from, and given to, other learners."""
    if mode != "explain":
        return False
    words = _WORD.findall(normalise(question))
    if not words:
        return False
    if first_in_session:
        return True
    return len(words) >= _MIN_WORDS and not _BACK_REFERENCES.intersection(words)


def answer_key(course: str, index_version: str, mode: str, model: str, question: str) -> str:
    """The cache key of an answer (a hash: questions never appear in Redis keys)."""
    return normalised_answer_key(course, index_version, mode, model, normalise(question))


def normalised_answer_key(
    course: str, index_version: str, mode: str, model: str, normalised: str
) -> str:
    """:func:`answer_key` of a question already normalised, hashed exactly as given."""
    return digest(course, index_version, mode, model, PROMPT_VERSION, normalised)


class AnswerCache:
    """Finished answers in the two-tier cache."""

    def __init__(self, cache: TwoTierCache) -> None:
        self._cache = cache

    async def get(self, key: str) -> CachedAnswer | None:
        """The cached answer, or None."""
        return await self._cache.get(ANSWERS, key)

    async def put(self, key: str, text: str, sources: list[dict[str, Any]], model: str) -> bool:
        """Cache a finished answer; False when it was too large to cache."""
        answer = CachedAnswer(text=text, sources=sources, model=model, created_at=time.time())
        return await self._cache.set(ANSWERS, key, answer)

    async def retire_all(self) -> int:
        """Retire every cached answer on every pod (after a prompt or model change)."""
        return await self._cache.retire(ANSWERS)


def split_for_delivery(text: str, max_chars: int = 1024) -> list[str]:
    """A cached answer cut into ``delta`` pieces at spaces; joined they give ``text``.

    The whole answer is ready, so pieces are large: fewer frames for the
    client to render and for the pod to write.
    """
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + 1, end)
            if cut > start:
                end = cut
        pieces.append(text[start:end])
        start = end
    return pieces
