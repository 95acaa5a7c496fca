"""PDFs written by the tests: known facts on known pages, and hostile files."""

from __future__ import annotations

import zlib
from pathlib import Path

from fpdf import FPDF

ROOT = Path(__file__).resolve().parents[2]
# The shared textbook sits beside the repository (CI has it there too); never copied in.
TEXTBOOK = ROOT.parent / "shared" / "corpus" / "introduction-philosophy-2e.pdf"

FILLER = (
    "Scholars have written about this subject for many years and each generation adds "
    "new observations, careful measurements and occasional disagreements about details. "
)

# (heading, fact) per page; page numbers are 1-based, page 1 is an introduction.
HARBOUR_FACTS = [
    ("Introduction", "This booklet describes the coastal town of Varnholm and its landmarks."),
    (
        "The Varnholm Lighthouse",
        "The Varnholm lighthouse was built in 1847 by the engineer Matilda Crane, "
        "who used granite hauled from the Ostby quarry.",
    ),
    (
        "Fishing Fleet",
        "The fishing fleet of Varnholm numbers forty-two boats and lands mostly herring and cod.",
    ),
    (
        "The Salt Market",
        "Every Thursday the salt market opens at dawn beside the old customs house.",
    ),
]

GLACIER_FACTS = [
    ("Introduction", "This booklet is about glaciers and the ice ages."),
    (
        "How Glaciers Move",
        "Glaciers move because ice deforms under its own weight, a process called creep, "
        "and because meltwater lets the base slide over the bedrock.",
    ),
    (
        "Moraines",
        "A terminal moraine is the ridge of rock debris a glacier pushes to its furthest point.",
    ),
]


def make_pdf(
    pages: list[tuple[str, str]],
    *,
    title: str = "",
    filler_sentences: int = 6,
    encrypt_password: str | None = None,
) -> bytes:
    """One page per (heading, fact): the heading, filler text, the fact, more filler."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if encrypt_password is not None:
        pdf.set_encryption(owner_password=encrypt_password, user_password=encrypt_password)
    for heading, fact in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        body = FILLER * (filler_sentences // 2) + fact + " " + FILLER * (filler_sentences // 2)
        pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def many_pages(count: int) -> bytes:
    """A valid PDF with ``count`` short pages."""
    return make_pdf([(f"Section {i}", f"Page {i} text.") for i in range(count)], filler_sentences=0)


def decompression_bomb(expanded_bytes: int = 400_000_000) -> bytes:
    """A one-page PDF whose content stream inflates from a few hundred KB to ``expanded_bytes``."""
    chunk = b"(A) Tj " * 100_000
    compressor = zlib.compressobj(9)
    body = bytearray()
    for _ in range(expanded_bytes // len(chunk)):
        body += compressor.compress(chunk)
    body += compressor.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length "
        + str(len(body)).encode()
        + b" /Filter /FlateDecode >>\nstream\n"
        + bytes(body)
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)
