"""PDF text, page by page, from untrusted bytes.

:func:`open_pages` checks the magic bytes, then parses in a child process
(:mod:`knowledge._extract`) under a deadline and an address-space limit, so an
encrypted file, a page-count bomb, a decompression bomb or a parser stuck in a
loop becomes a :class:`~core.errors.DocumentRejected` with a reason, never a
hung or killed worker.

The child writes each page as one JSON line into an unnamed temporary file as
soon as it has extracted it; the caller then reads the pages back one at a
time. Neither process holds the whole document's text, the deadline covers
the extraction alone (not however long the caller takes over each page), and
a document that fails anywhere (a text cap reached on the last page) fails
before the caller has seen any of it. :func:`extract_pages` is the same, read
into a list.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from core.errors import DocumentRejected

PDF_MAGIC = b"%PDF-"
# The header may follow a little junk; readers accept it within the first kilobyte.
_MAGIC_WINDOW = 1024
# The child's last line (end or error) is short; it lies within this tail of its output.
_TAIL_BYTES = 4096


@dataclass(frozen=True, slots=True)
class PdfText:
    """The text of a PDF: its title (may be empty) and one string per page."""

    title: str
    pages: list[str]


class PageStream:
    """The pages of an extracted PDF, read from the child's output one at a time."""

    def __init__(self, title: str, page_count: int, lines: IO[bytes]) -> None:
        self.title = title
        self.page_count = page_count
        self._lines = lines

    def __iter__(self) -> Iterator[str]:
        """Each page's text, in order (only once)."""
        for _ in range(self.page_count):
            yield str(_parse(self._lines.readline()).get("text", ""))


def looks_like_pdf(data: bytes) -> bool:
    """True when the PDF header is in the first kilobyte."""
    return PDF_MAGIC in data[:_MAGIC_WINDOW]


@contextmanager
def open_pages(
    data: bytes,
    *,
    max_pages: int,
    max_text_bytes: int,
    timeout_s: float,
    memory_bytes: int,
) -> Iterator[PageStream]:
    """Extract ``data`` in a child process; :class:`DocumentRejected` for anything unusable."""
    if not looks_like_pdf(data):
        raise DocumentRejected("the file is not a PDF (no %PDF- header)")
    with tempfile.TemporaryFile() as out:
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
                stdout=out,
                stderr=subprocess.DEVNULL,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DocumentRejected(f"text extraction took longer than {timeout_s:g} s") from None
        # The file (up to LIVETUTOR_MAX_UPLOAD_BYTES) is not needed while the pages are read.
        del data
        if done.returncode != 0:
            raise DocumentRejected(f"text extraction failed (exit code {done.returncode})")
        last = _last_line(out)
        if "error" in last:
            raise DocumentRejected(str(last["error"]))
        if last.get("end") is not True:
            raise DocumentRejected("text extraction failed (no result)")
        out.seek(0)
        header = _parse(out.readline())
        yield PageStream(str(header.get("title", "")), int(header.get("pages", 0)), out)


def extract_pages(
    data: bytes,
    *,
    max_pages: int,
    max_text_bytes: int,
    timeout_s: float,
    memory_bytes: int,
) -> PdfText:
    """The text of each page in one list; :class:`DocumentRejected` for anything unusable."""
    with open_pages(
        data,
        max_pages=max_pages,
        max_text_bytes=max_text_bytes,
        timeout_s=timeout_s,
        memory_bytes=memory_bytes,
    ) as pages:
        return PdfText(pages.title, list(pages))


def _last_line(out: IO[bytes]) -> dict[str, Any]:
    size = out.seek(0, os.SEEK_END)
    out.seek(max(size - _TAIL_BYTES, 0))
    lines = out.read().splitlines()
    return _parse(lines[-1]) if lines else {}


def _parse(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        raise DocumentRejected("text extraction failed (no result)") from None
    if not isinstance(value, dict):
        raise DocumentRejected("text extraction failed (no result)")
    return value
