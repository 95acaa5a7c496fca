"""Text utilities every layer shares: the search tokenizer, question normalisation, personal data.

:func:`terms` turns text into the lower-cased, crudely stemmed words that
lexical ranking, the offline embedder and typing predictions compare;
:func:`normalise` folds case, width, quotes, spacing and trailing
punctuation, which is what makes two asks the same question;
:func:`has_personal_data` tells whether a learner's text may identify
someone, and so must never be shown to other learners.
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


# Top-level domains of more than two letters that questions name (two-letter ones all count).
_TLDS = (
    *("com", "org", "net", "edu", "gov", "mil", "info", "biz", "app", "dev", "xyz"),
    *("online", "site", "tech", "cloud", "email", "blog", "school", "academy", "university"),
)

# Personal-data patterns, matched on NFKC-folded, lower-cased text with invisible
# format characters removed (so a zero-width space cannot split a number). They are
# in three groups, each tried only when the text holds what every pattern of the group
# needs: a question without a digit, an "@" or a dot is cleared without a regular
# expression walking it (a walk cost about 40 µs of the event loop per ask).
_DIGIT = re.compile(r"\d")
_WITH_DIGITS = re.compile(
    "|".join(
        [
            # A run of three or more digits: ids, phone numbers, years of birth, PINs.
            r"\d{3}",
            # Five or more digits split by spaces, dashes, dots, slashes or brackets:
            # "+44 (0)20 7946 0018", "12/03/99", "4 2 4 2 1".
            r"\d(?:[\W_]{0,3}\d){4}",
            # A word mixing letters and digits, four characters or longer: student and
            # staff ids ("s1234", "ab12cd"), postcodes ("sw1a"), licence plates.
            r"\b(?=[^\W_]*\d)(?=[^\W_]*[^\W\d_])[^\W_]{4,}\b",
        ]
    )
)
# E-mail addresses and handles: any "@".
_HANDLE = "@"
# URLs and host names: each needs a dot or "://".
_HOSTS = re.compile(
    "|".join(
        [
            r"[a-z][a-z0-9+.-]*://",
            r"\bwww\.",
            r"\b[^\W_][\w-]*(?:\.[\w-]+)*\.(?:[a-z]{2}|" + "|".join(_TLDS) + r")\b",
        ]
    )
)


def has_personal_data(text: str) -> bool:
    """True when ``text`` holds a digit run, an e-mail, a URL or another personal-data pattern.

    Conservative on purpose: a false alarm only keeps a question from being
    offered to other learners, a miss could show one learner's details to all.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    # No ASCII character is a format character.
    if not folded.isascii():
        folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    visible = _SPACE.sub(" ", folded)
    if _HANDLE in visible:
        return True
    if _DIGIT.search(visible) is not None and _WITH_DIGITS.search(visible) is not None:
        return True
    return ("." in visible or "://" in visible) and _HOSTS.search(visible) is not None
