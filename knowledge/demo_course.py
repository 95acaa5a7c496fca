"""The bundled demo course.

Course ``demo`` is a short original text in ``knowledge/demo/demo.md``; each
``## Page N: Heading`` starts a page and each paragraph is a passage, served
by the lexical retriever (:mod:`knowledge.lexical`). ``knowledge/demo/demo.pdf``
holds the same text with one section per PDF page (built by
:mod:`devtools.demo_pdf`), so the demo's citations open in the source viewer
like those of an uploaded PDF: their ``document_id`` is :data:`DEMO_DOCUMENT_ID`.
"""

from __future__ import annotations

import re
from importlib import resources

from core.retrieval import Passage
from knowledge.lexical import LexicalRetriever

DEMO_COURSE = "demo"
DEMO_DOCUMENT = "Thinking Clearly (demo course)"
# Never an uploaded document's id (those are 32 hex digits).
DEMO_DOCUMENT_ID = "demo"
DEMO_FILENAME = "thinking-clearly-demo.pdf"
_PAGE = re.compile(r"^## Page (\d+): (.+)$")


def demo_passages() -> list[Passage]:
    """The demo course, one passage per paragraph."""
    text = resources.files("knowledge").joinpath("demo/demo.md").read_text(encoding="utf-8")
    passages: list[Passage] = []
    page, heading = 0, ""
    for block in text.split("\n\n"):
        block = block.strip()
        match = _PAGE.match(block)
        if match:
            page, heading = int(match.group(1)), match.group(2)
        elif page and block:
            passages.append(
                Passage(DEMO_DOCUMENT, page, heading, block, document_id=DEMO_DOCUMENT_ID)
            )
    return passages


def demo_pdf() -> bytes:
    """The demo course as a PDF, one page per ``## Page N`` section."""
    return resources.files("knowledge").joinpath("demo/demo.pdf").read_bytes()


def demo_retriever() -> LexicalRetriever:
    """A retriever that knows the demo course."""
    return LexicalRetriever({DEMO_COURSE: demo_passages()})
