"""The bundled demo course's PDF holds its text, each passage on the page it cites."""

from __future__ import annotations

import io

from pypdf import PdfReader

from devtools.demo_pdf import DEMO_DIR, build_demo_pdf
from knowledge.demo_course import DEMO_DOCUMENT_ID, demo_passages, demo_pdf


def _pages(data: bytes) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages]


def test_every_passage_is_on_its_page_of_the_committed_pdf() -> None:
    """Each demo passage's text is on the PDF page it cites (so the PDF is current)."""
    pages = _pages(demo_pdf())
    passages = demo_passages()
    assert len(pages) == max(p.page for p in passages) == 8
    for passage in passages:
        assert " ".join(passage.text.split()) in pages[passage.page - 1], passage.page
        assert passage.heading in pages[passage.page - 1]


def test_demo_passages_name_the_demo_document() -> None:
    """Every demo passage carries the document id whose file is the demo PDF."""
    assert {p.document_id for p in demo_passages()} == {DEMO_DOCUMENT_ID}


def test_the_pdf_is_small_and_titled() -> None:
    """A few kilobytes, with the course title in its metadata."""
    data = demo_pdf()
    assert len(data) < 20_000
    metadata = PdfReader(io.BytesIO(data)).metadata
    assert metadata is not None
    assert str(metadata.title).startswith("Thinking Clearly")


def test_building_again_gives_the_same_text() -> None:
    """The builder turns demo.md into the same pages as the committed PDF."""
    built = build_demo_pdf((DEMO_DIR / "demo.md").read_text(encoding="utf-8"))
    assert _pages(built) == _pages(demo_pdf())
