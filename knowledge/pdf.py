"""PDF text, page by page, from untrusted bytes.

:func:`extract_pages` checks the magic bytes, then parses in a child process
(:mod:`knowledge._extract`) under a deadline and an address-space limit, so an
encrypted file, a page-count bomb, a decompression bomb or a parser stuck in a
loop becomes a :class:`~core.errors.DocumentRejected` with a reason, never a
hung or killed worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from core.errors import DocumentRejected

PDF_MAGIC = b"%PDF-"
# The header may follow a little junk; readers accept it within the first kilobyte.
_MAGIC_WINDOW = 1024


@dataclass(frozen=True, slots=True)
class PdfText:
    """The text of a PDF: its title (may be empty) and one string per page."""

    title: str
    pages: list[str]


def looks_like_pdf(data: bytes) -> bool:
    """True when the PDF header is in the first kilobyte."""
    return PDF_MAGIC in data[:_MAGIC_WINDOW]


def extract_pages(
    data: bytes,
    *,
    max_pages: int,
    max_text_bytes: int,
    timeout_s: float,
    memory_bytes: int,
) -> PdfText:
    """The text of each page; :class:`DocumentRejected` for anything unusable."""
    if not looks_like_pdf(data):
        raise DocumentRejected("the file is not a PDF (no %PDF- header)")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "knowledge._extract",
                str(max_pages),
                str(max_text_bytes),
                str(memory_bytes),
            ],
            input=data,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DocumentRejected(f"text extraction took longer than {timeout_s:g} s") from None
    if done.returncode != 0:
        raise DocumentRejected(f"text extraction failed (exit code {done.returncode})")
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise DocumentRejected("text extraction failed (no result)") from None
    if "error" in result:
        raise DocumentRejected(str(result["error"]))
    return PdfText(str(result.get("title", "")), [str(t) for t in result["pages"]])
