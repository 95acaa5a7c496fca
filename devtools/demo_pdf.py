"""Build the bundled demo course's PDF (``knowledge/demo/demo.pdf``) from its text.

The demo course's passages come from ``knowledge/demo/demo.md``; the PDF holds
the same text, one ``## Page N: Heading`` section per PDF page, so a citation of
page N opens the viewer at the page that holds the cited paragraph. The PDF is
committed; run this after editing the text::

    python -m devtools.demo_pdf

It needs ``fpdf2`` (the ``dev`` extra). The standard Helvetica font is used and
not embedded, which keeps the file a few kilobytes.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

from fpdf import FPDF

DEMO_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "demo"
_PAGE = re.compile(r"^## Page (\d+): (.+)$")
_TITLE = re.compile(r"^# (.+)$")
# A fixed date: the same text always gives the same bytes.
_CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def build_demo_pdf(markdown: str) -> bytes:
    """The PDF of the demo text: one page per ``## Page N`` section, in order."""
    pdf = FPDF(format="A4")
    pdf.set_margins(22, 22, 22)
    pdf.set_auto_page_break(auto=False)
    pdf.set_creation_date(_CREATED)
    pdf.set_creator("LiveTutor demo course")
    course_title = ""
    pages = 0
    for block in markdown.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        title = _TITLE.match(block)
        heading = _PAGE.match(block)
        if title:
            course_title = title.group(1)
            pdf.set_title(course_title)
        elif heading:
            pages += 1
            if int(heading.group(1)) != pages:
                raise ValueError(f"page {heading.group(1)} is out of order (expected {pages})")
            pdf.add_page()
            if pages == 1 and course_title:
                pdf.set_font("Helvetica", "B", 18)
                pdf.multi_cell(0, 9, course_title, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
            pdf.set_font("Helvetica", "B", 14)
            pdf.multi_cell(0, 8, heading.group(2), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
            pdf.set_font("Helvetica", "", 11)
        elif pages:
            pdf.multi_cell(0, 5.6, " ".join(block.split()), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
            if pdf.get_y() > pdf.h - 22:
                raise ValueError(f"page {pages} does not fit on one PDF page")
        # Text before the first page heading (other than the title) is not part of the course.
    # Footer page numbers, so a reader can see which page the viewer shows.
    for number in range(1, pages + 1):
        pdf.page = number
        pdf.set_y(-16)
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(0, 6, f"Page {number} of {pages}", align="C")
    pdf.page = pages
    return bytes(pdf.output())


def main() -> int:
    """Write ``knowledge/demo/demo.pdf`` from ``knowledge/demo/demo.md``."""
    text = (DEMO_DIR / "demo.md").read_text(encoding="utf-8")
    out = DEMO_DIR / "demo.pdf"
    out.write_bytes(build_demo_pdf(text))
    print(f"wrote {out.name}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
