"""Indexing streams a document batch by batch, and a re-index moves it to a new embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import DocumentRejected
from core.settings import Settings
from knowledge.chunking import chunk_pages
from knowledge.ingest import CURRENT, Ingest
from knowledge.pdf import extract_pages
from knowledge.vectors import DocumentRecord
from tests.support.pdfs import HARBOUR_FACTS, make_pdf

LIMITS = {"max_pages": 2000, "max_text_bytes": 20_000_000, "timeout_s": 60, "memory_bytes": 0}
# Eight pages of a few chunks each: several batches of three chunks.
GUIDE = make_pdf(HARBOUR_FACTS * 2, title="Harbour Guide", filler_sentences=12)


def settings(tmp_path: Path, embedder: str, **env: str) -> Settings:
    return Settings.from_env(
        {
            "LIVETUTOR_DATA_DIR": str(tmp_path),
            "LIVETUTOR_EMBEDDER": embedder,
            "LIVETUTOR_HYBRID": "false",
            "LIVETUTOR_EMBED_BATCH": "3",
            **env,
        }
    )


@pytest.fixture
def seen() -> list[DocumentRecord]:
    return []


@pytest.fixture
def ingest(tmp_path: Path, seen: list[DocumentRecord]) -> Iterator[Ingest]:
    job = Ingest.create(settings(tmp_path, "hashing"), notify=lambda r: seen.append(_copy(r)))
    yield job
    job.kb.close()


def _copy(record: DocumentRecord) -> DocumentRecord:
    return DocumentRecord(**{name: getattr(record, name) for name in record.__slots__})


def expected(data: bytes) -> tuple[int, int]:
    """Pages and chunks of ``data``, extracted and chunked in one piece."""
    pages = extract_pages(data, **LIMITS).pages
    return len(pages), len(chunk_pages(pages, words=180, overlap=40))


def test_progress_counts_pages_and_chunks_written(
    ingest: Ingest, seen: list[DocumentRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While indexing, a record holds the page count and the chunks written so far."""
    monkeypatch.setattr("knowledge.ingest._PROGRESS_EVERY_S", 0.0)
    record, _ = ingest.add_upload("harbour", "guide.pdf", GUIDE, user="ines")
    assert ingest.index(record.id) == "ready"
    pages, total = expected(GUIDE)
    assert pages == 8 and total > 6
    counted = [r for r in seen if r.status == "indexing" and r.chunks]
    # One notice per batch of three, each with three more chunks, the last with the rest.
    assert [r.chunks for r in counted] == [min(n, total) for n in range(3, total + 3, 3)]
    assert all(r.pages == 8 for r in counted)
    progress = [r.progress for r in counted]
    assert progress == sorted(progress) and progress[0] > 0 and progress[-1] < 1
    final = seen[-1]
    assert (final.status, final.pages, final.chunks, final.progress) == ("ready", 8, total, 1.0)
    assert final.title == "Harbour Guide"
    assert ingest.kb.count_chunks("harbour", ingest.embedder.name, record.id) == total


def test_text_over_the_cap_fails_before_any_chunk_is_written(tmp_path: Path) -> None:
    """A text cap reached on the last page rejects the PDF; no chunk of it is searchable."""
    limit = len(" ".join(f for _, f in HARBOUR_FACTS).encode()) * 4
    job = Ingest.create(settings(tmp_path, "hashing", LIVETUTOR_MAX_TEXT_BYTES=str(limit)))
    try:
        record, _ = job.add_upload("harbour", "guide.pdf", GUIDE, user="ines")
        with pytest.raises(DocumentRejected, match=r"more than \d+ bytes of text"):
            job.index(record.id)
        assert job.kb.count_chunks("harbour", job.embedder.name) == 0
    finally:
        job.kb.close()


def test_reindex_moves_a_course_to_the_new_embedder_once(tmp_path: Path) -> None:
    """After the embedder changes, a re-index makes the course searchable again; a rerun skips."""
    before = Ingest.create(settings(tmp_path, "hashing"))
    record, _ = before.add_upload("harbour", "guide.pdf", GUIDE, user="ines")
    assert before.index(record.id) == "ready"
    assert before.reindex(record.id) == CURRENT
    before.kb.close()

    after = Ingest.create(settings(tmp_path, "minilm"))
    try:
        vector = after.embedder.embed(["Who built the lighthouse and with what stone?"])[0]
        name = after.embedder.name
        assert after.kb.query("harbour", name, vector, 4) == []
        assert after.reindex(record.id) == "ready"
        assert "Matilda Crane" in after.kb.query("harbour", name, vector, 4)[0].text
        stored = after.kb.get_document(record.id)
        assert stored is not None and stored.status == "ready"
        assert after.kb.count_chunks("harbour", after.embedder.name) == stored.chunks
        assert after.reindex(record.id) == CURRENT
    finally:
        after.kb.close()
