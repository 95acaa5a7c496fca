"""Typing predictions: up to five course topics matching what the learner is typing.

Per course, a small index of phrases (section headings, and the word pairs and
triples that recur across its chunks) is built once per index version, off the
event loop. A prediction is then a few dictionary look-ups: the last, partial
word by prefix, the words before it by exact stem, ranked by how many typed
words a phrase shares and how common it is in the course. No model, no I/O.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.text import terms

MAX_ITEMS = 5
_MAX_PREFIX = 8
_MAX_POSTINGS = 64
_WORD = re.compile(r"[A-Za-z0-9]+")


@dataclass(slots=True)
class PhraseIndex:
    """Phrases of one course and their look-up tables."""

    phrases: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    stems: list[frozenset[str]] = field(default_factory=list)
    words: list[tuple[str, ...]] = field(default_factory=list)
    by_prefix: dict[str, list[int]] = field(default_factory=dict)
    by_stem: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, labels: Iterable[tuple[str, str]], max_phrases: int = 4_000) -> PhraseIndex:
        """From (heading, text) pairs: headings weigh most, then recurring word groups."""
        headings: Counter[str] = Counter()
        groups: Counter[str] = Counter()
        for heading, text in labels:
            if heading:
                headings[heading.strip()] += 1
            words = [w.lower() for w in _WORD.findall(text)]
            for n in (2, 3):
                for i in range(len(words) - n + 1):
                    gram = words[i : i + n]
                    if any(len(w) < 3 or not terms(w) for w in (gram[0], gram[-1])):
                        continue
                    groups[" ".join(gram)] += 1
        index = cls()
        seen: set[str] = set()
        candidates = [(h, 3.0 + min(c, 20) / 10) for h, c in headings.most_common(max_phrases)]
        candidates += [(g, min(c, 50) / 25) for g, c in groups.most_common(max_phrases) if c >= 3]
        for phrase, weight in candidates[:max_phrases]:
            key = phrase.lower()
            if key in seen or len(phrase) < 4:
                continue
            seen.add(key)
            index._add(phrase, weight)
        index._rank_postings()
        return index

    @classmethod
    def from_phrases(cls, phrases: Iterable[tuple[str, float]]) -> PhraseIndex:
        """From phrases with their weights as given (a course's most asked questions)."""
        index = cls()
        for phrase, weight in phrases:
            if len(phrase) >= 4:
                index._add(phrase, weight)
        index._rank_postings()
        return index

    def _rank_postings(self) -> None:
        for table in (self.by_prefix, self.by_stem):
            for ids in table.values():
                ids.sort(key=lambda i: self.weights[i], reverse=True)
                del ids[_MAX_POSTINGS:]

    def _add(self, phrase: str, weight: float) -> None:
        i = len(self.phrases)
        self.phrases.append(phrase)
        self.weights.append(weight)
        stems = frozenset(terms(phrase))
        self.stems.append(stems)
        self.words.append(tuple(w.lower() for w in _WORD.findall(phrase)))
        for stem in stems:
            self.by_stem.setdefault(stem, []).append(i)
        for word in {w.lower() for w in _WORD.findall(phrase)}:
            for n in range(2, min(len(word), _MAX_PREFIX) + 1):
                self.by_prefix.setdefault(word[:n], []).append(i)

    def predict(self, text: str, limit: int = MAX_ITEMS) -> list[str]:
        """Up to ``limit`` phrases for the text typed so far, best first."""
        words = _WORD.findall(text.lower())
        if not words:
            return []
        partial = words[-1] if text and text[-1].isalnum() else ""
        complete = set(terms(" ".join(words[:-1] if partial else words)))
        candidates: set[int] = set()
        if len(partial) >= 2:
            candidates.update(self.by_prefix.get(partial[:_MAX_PREFIX], ()))
        for stem in complete:
            candidates.update(self.by_stem.get(stem, ()))
        if not candidates:
            return []

        # Phrases that complete the word being typed first, then shared words, then weight.
        scored = []
        for i in candidates:
            completes = bool(partial) and any(w.startswith(partial) for w in self.words[i])
            scored.append((completes, len(complete & self.stems[i]), self.weights[i], -i))
        return [self.phrases[-key[3]] for key in heapq.nlargest(limit, scored)]
