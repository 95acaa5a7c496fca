"""Text utilities every layer shares: the search tokenizer and question normalisation.

:func:`terms` turns text into the lower-cased, crudely stemmed words that
lexical ranking, the offline embedder and typing predictions compare;
:func:`normalise` folds case, width, quotes, spacing and trailing
punctuation, which is what makes two asks the same question.
"""

from __future__ import annotations

import re
import unicodedata

_TERM = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def terms(text: str) -> list[str]:
    """Lower-cased words without stop words, crudely stemmed (plural and -ing/-ed endings)."""
    out = []
    for word in _TERM.findall(text.lower()):
        if word in _STOP:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if len(word) > len(suffix) + 3 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        out.append(word)
    return out


_SPACE = re.compile(r"\s+")
# NFKC has already folded full-width forms to these.
_TRAILING = " \t\n?!.\u3002\u2026"
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def normalise(question: str) -> str:
    """Case, width, spacing and trailing punctuation folded: what makes two asks the same."""
    text = unicodedata.normalize("NFKC", question).casefold()
    text = text.translate(_QUOTES)
    return _SPACE.sub(" ", text).strip().rstrip(_TRAILING).strip()
