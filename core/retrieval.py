"""Retrieval interface: course passages for a question.

:class:`Passage` is what the pipeline cites; a :class:`Retriever` finds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of course text with where it comes from."""

    document: str
    page: int
    heading: str
    text: str
    score: float = 0.0
    # The course document's id (empty for bundled text) and its title (``document`` if empty).
    document_id: str = ""
    title: str = ""
    # False when its relevance is below the retriever's calibrated "not covered" threshold:
    # the nearest the course comes, but not an answer to the question.
    covers: bool = True

    def source(self, snippet_chars: int = 240) -> dict[str, Any]:
        """The citation sent to the learner in ``stream.end.sources``."""
        snippet = self.text if len(self.text) <= snippet_chars else self.text[:snippet_chars] + "…"
        return {
            "document": self.document,
            "document_id": self.document_id,
            "title": self.title or self.document,
            "page": self.page,
            "heading": self.heading,
            "snippet": snippet,
            "score": round(self.score, 4),
        }


class Retriever(Protocol):
    """Finds the passages of one course that best answer a question."""

    def courses(self) -> list[str]:
        """Course ids this retriever knows."""
        ...

    async def retrieve(self, course: str, question: str, k: int) -> list[Passage]:
        """Up to ``k`` passages of ``course``, best first; empty when nothing matches."""
        ...

    async def index_version(self, course: str) -> str:
        """A tag that changes whenever the course's content changes (answer cache keys use it)."""
        ...
