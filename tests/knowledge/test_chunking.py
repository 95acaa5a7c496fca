"""Chunks keep their page and nearest heading, overlap, and never cross a page."""

from __future__ import annotations

from knowledge.chunking import chunk_pages, is_heading


def test_chunks_keep_page_and_heading_and_overlap() -> None:
    """Windows overlap by the given words; each chunk cites its page and heading."""
    words = " ".join(f"w{i}" for i in range(100))
    pages = [f"Deductive Arguments\n{words}", "more text on page two without a heading"]
    chunks = chunk_pages(pages, words=40, overlap=10)
    first_page = [c for c in chunks if c.page == 1]
    assert [c.text.split()[0] for c in first_page] == ["Deductive", "w28", "w58", "w88"]
    assert first_page[1].text.split()[:10] == first_page[0].text.split()[-10:]
    assert {c.heading for c in chunks} == {"Deductive Arguments"}
    assert chunks[-1].page == 2 and chunks[-1].text.startswith("more text")
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_verbatim_repeats_are_dropped() -> None:
    """A running footer repeated on every page is kept once."""
    pages = ["Copyright notice of the publisher"] * 5
    assert len(chunk_pages(pages, words=50, overlap=5)) == 1


def test_empty_pages_give_no_chunks() -> None:
    """Pages without text (scans) yield nothing."""
    assert chunk_pages(["", "  \n "], words=50, overlap=5) == []


def test_heading_detection() -> None:
    """Short title-like lines and numbered sections are headings; sentences are not."""
    assert is_heading("2.3 Deductive Arguments")
    assert is_heading("The Varnholm Lighthouse")
    assert is_heading("Chapter 4 Metaphysics")
    assert not is_heading("This sentence ends with a full stop.")
    assert not is_heading("a lower-case line that runs on")
    assert not is_heading("12")
