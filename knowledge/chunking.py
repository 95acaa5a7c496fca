"""Page text to chunks of a few hundred words that keep their page and nearest heading.

Chunks never cross a page boundary, so each one cites exactly one page. Within
a page, windows of ``words`` words advance by ``words - overlap`` so that a
sentence cut at one edge is whole in the neighbouring chunk. A heading is a
short line without a final full stop that starts with a capital or a section
number ("2.3 Deductive Arguments"); the last one seen, on this page or an
earlier one, labels the chunk.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_SECTION = re.compile(r"^(?:\d+(?:\.\d+)*\.?|chapter\s+\d+|[IVX]+\.)\s+\S", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_MAX_HEADING_WORDS = 10


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of one page."""

    page: int
    heading: str
    text: str
    index: int

    @property
    def digest(self) -> str:
        """Hash of the normalised text: equal for verbatim repeats (running headers, copies)."""
        return hashlib.blake2b(self.text.lower().encode(), digest_size=8).hexdigest()


def is_heading(line: str) -> bool:
    """A short, title-like line."""
    line = line.strip()
    words = line.split()
    if not words or len(words) > _MAX_HEADING_WORDS or len(line) < 4:
        return False
    if line.endswith((".", ",", ";", ":", "?", "!")) and not _SECTION.match(line):
        return False
    if _SECTION.match(line):
        return True
    capitals = sum(1 for w in words if w[:1].isupper())
    return words[0][:1].isupper() and capitals * 2 >= len(words) and any(c.isalpha() for c in line)


def chunk_pages(pages: list[str], *, words: int, overlap: int) -> list[Chunk]:
    """Chunks of every page (1-based page numbers), in order, verbatim repeats dropped."""
    return list(iter_chunks(pages, words=words, overlap=overlap))


def iter_chunks(pages: Iterable[str], *, words: int, overlap: int) -> Iterator[Chunk]:
    """:func:`chunk_pages` as a stream: each page is read only when its chunks are wanted."""
    seen: set[str] = set()
    heading = ""
    index = 0
    step = max(words - overlap, 1)
    for number, text in enumerate(pages, start=1):
        # Words with the heading in force where each word starts.
        tokens: list[tuple[str, str]] = []
        for line in text.splitlines():
            if is_heading(line):
                heading = _SPACES.sub(" ", line.strip())[:120]
            tokens.extend((w, heading) for w in line.split())
        if not tokens:
            continue
        start = 0
        while True:
            window = tokens[start : start + words]
            body = " ".join(w for w, _ in window)
            chunk = Chunk(number, window[0][1], body, index)
            if chunk.digest not in seen and len(window) >= min(words // 8, len(tokens)):
                seen.add(chunk.digest)
                index += 1
                yield chunk
            if start + words >= len(tokens):
                break
            start += step
