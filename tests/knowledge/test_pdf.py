"""PDF text extraction under limits."""

from __future__ import annotations

import pytest

from core.errors import DocumentRejected
from knowledge.pdf import extract_pages
from tests.support.pdfs import HARBOUR_FACTS, decompression_bomb, make_pdf

LIMITS = {"max_pages": 50, "max_text_bytes": 1_000_000, "timeout_s": 30, "memory_bytes": 10**9}


def test_pages_and_title() -> None:
    """Text comes back one string per page, with the PDF's title."""
    text = extract_pages(make_pdf(HARBOUR_FACTS, title="Harbour Guide"), **LIMITS)
    assert text.title == "Harbour Guide"
    assert len(text.pages) == 4
    assert "Matilda Crane" in text.pages[1] and "Matilda Crane" not in text.pages[2]


def test_extraction_deadline_kills_the_parser() -> None:
    """A parser still running at the deadline is killed and the document rejected."""
    with pytest.raises(DocumentRejected, match="took longer than"):
        extract_pages(make_pdf(HARBOUR_FACTS), **{**LIMITS, "timeout_s": 0.001})


def test_text_cap_stops_a_bomb_even_with_a_large_memory_limit() -> None:
    """An inflating stream is stopped by the parser's limits or the text cap."""
    with pytest.raises(DocumentRejected, match=r"decompression bomb|bytes of text"):
        extract_pages(decompression_bomb(), **{**LIMITS, "memory_bytes": 0})


def test_not_a_pdf() -> None:
    """Without the header nothing is parsed."""
    with pytest.raises(DocumentRejected, match="not a PDF"):
        extract_pages(b"GIF89a....", **LIMITS)
