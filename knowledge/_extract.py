"""Child process of :func:`knowledge.pdf.open_pages`: PDF bytes on stdin, JSON lines on stdout.

Run as ``python -m knowledge._extract MAX_PAGES MAX_TEXT_BYTES MEMORY_BYTES``. It writes
one JSON object per line, each page as soon as it is extracted, so neither this process
nor its parent ever holds the whole document's text::

    {"title": "…", "pages": 385}     after the page count is checked
    {"text": "…"}                    one line per page, in order
    {"end": true}                    the last line of a complete extraction

or ``{"error": reason}`` as the last line (at any point). The parent kills it at its
deadline; the address-space limit turns a decompression bomb into a MemoryError here
instead of an out-of-memory kill of the worker.
"""

from __future__ import annotations

import json
import resource
import sys


def _limit_memory(max_bytes: int) -> None:
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def _line(value: dict[str, object]) -> None:
    # json.dumps escapes newlines inside strings: one object is one line.
    sys.stdout.write(json.dumps(value) + "\n")


def _fail(reason: str) -> int:
    _line({"error": reason})
    return 0


def main(argv: list[str]) -> int:
    """Extract and print the header, one line per page and the end (or an error) line."""
    max_pages, max_text_bytes, memory_bytes = (int(a) for a in argv[:3])
    data = sys.stdin.buffer.read()
    _limit_memory(memory_bytes)
    import io

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return _fail("the PDF is encrypted")
        count = len(reader.pages)
        if count > max_pages:
            return _fail(f"the PDF has {count} pages; the limit is {max_pages}")
        if count == 0:
            return _fail("the PDF has no pages")
        title = ""
        try:
            meta = reader.metadata
            if meta is not None and meta.title:
                title = str(meta.title).strip()[:200]
        except Exception:
            title = ""
        _line({"title": title, "pages": count})
        total = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            total += len(text.encode("utf-8", "ignore"))
            if total > max_text_bytes:
                return _fail(f"the PDF holds more than {max_text_bytes} bytes of text")
            _line({"text": text})
    except MemoryError:
        return _fail("the PDF expands beyond the memory limit (decompression bomb?)")
    except FileNotDecryptedError:
        return _fail("the PDF is encrypted")
    except (PdfReadError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return _fail(f"the file is not a readable PDF ({type(exc).__name__})")
    except Exception as exc:
        if type(exc).__name__ == "LimitReachedError":
            return _fail("the PDF expands beyond the allowed size (decompression bomb?)")
        return _fail(f"the file is not a readable PDF ({type(exc).__name__})")
    _line({"end": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
