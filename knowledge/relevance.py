"""Is a question about the course at all? Words the course never uses.

A question naming something the course never mentions ("kierkegaard", "photosynthesis")
is likely not covered, however close its other words come to some page. A word counts
as such when it is rare in English, judged by the MiniLM WordPiece vocabulary shipped in
``knowledge/minilm/`` (a word it splits into three or more pieces is not a common
word), appears in none of the passages found for the question, and is no misspelling of
a word that does ("euthenasia" for "euthanasia": a close match by :mod:`difflib`).
Common words a learner uses instead of the book's ("boat", "legit") never count.
:func:`rare_words` returns the misspellings too, mapped to the passages' spelling, so
the retriever can ask its exact-word ranking again as the course spells them.

The passages found are the union of both rankings' candidates: a rare word the course
does use is found by the lexical ranking, which matches exact words, so the candidates
stand in for the course's whole vocabulary without holding it in memory.
"""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata
from collections.abc import Iterable
from importlib import resources
from typing import Any

from core.text import terms

# A word of at least this many WordPiece pieces is rare in English.
RARE_PIECES = 3
# difflib similarity from which an unknown word is a misspelling of a known one.
MISSPELLING_RATIO = 0.8
_MIN_CHARS = 4
_WORD = re.compile(r"[a-z]+")
# Combining accents, as NFKD separates them from their letters.
_MARKS = re.compile("[\u0300-\u036f]")

_tokenizer: Any = None
_tokenizer_lock = threading.Lock()


def _pieces(word: str) -> int:
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            from tokenizers import Tokenizer

            path = resources.files("knowledge").joinpath("minilm/tokenizer.json")
            _tokenizer = Tokenizer.from_file(str(path))
            # The shipped file pads every input to 128 pieces.
            _tokenizer.no_padding()
        return len(_tokenizer.encode(word, add_special_tokens=False).ids)


def words(text: str) -> set[str]:
    """Lower-case words of ``text`` with accents removed ("Olúwọlé" is "oluwole")."""
    plain = _MARKS.sub("", unicodedata.normalize("NFKD", text.casefold()))
    return set(_WORD.findall(plain))


def rare_words(question: str, passages: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """The question's rare words that none of ``passages`` uses.

    Returns those that are a misspelling of a word the passages use (mapped to that
    word), and the others: words the course never uses.
    """
    wanted = [
        w
        for w in sorted(words(question))
        if len(w) >= _MIN_CHARS and terms(w) and _pieces(w) >= RARE_PIECES
    ]
    if not wanted:
        return {}, []
    known: set[str] = set()
    for text in passages:
        known |= words(text)
    candidates = [w for w in known if len(w) >= _MIN_CHARS]
    misspelled: dict[str, str] = {}
    unknown: list[str] = []
    for word in wanted:
        if word in known:
            continue
        close = difflib.get_close_matches(word, candidates, n=1, cutoff=MISSPELLING_RATIO)
        if close:
            misspelled[word] = close[0]
        else:
            unknown.append(word)
    return misspelled, unknown


def unknown_rare_word(question: str, passages: Iterable[str]) -> str:
    """A rare word of the question that none of ``passages`` uses (nor a close spelling), or ""."""
    unknown = rare_words(question, passages)[1]
    return unknown[0] if unknown else ""
