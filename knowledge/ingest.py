"""The bodies of the document jobs, shared by Celery workers and the embedded runner.

:class:`Ingest` holds what a job needs (settings, vector store, file store,
embedders, a progress callback). Its methods are synchronous and idempotent:

- :meth:`Ingest.add_upload` stores an upload and registers it (``queued``);
  the same bytes in the same course give back the existing document;
- :meth:`Ingest.prefetch` fetches a registered URL under the SSRF rules, then indexes;
- :meth:`Ingest.index` extracts, chunks, embeds and writes chunks with stable ids,
  a batch at a time, reporting progress; running it again after a crash rewrites
  the same chunks;
- :meth:`Ingest.reindex` does the same for a ready document whose chunks are not
  all under the configured embedders (the embedder changed), from its stored file;
- :meth:`Ingest.delete` removes a document, its chunks and its file.

They raise :class:`~core.errors.DocumentRejected` for permanent failures (the
caller records a dead letter through :meth:`Ingest.dead_letter`) and anything
else for transient ones (the caller retries with backoff).
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import itertools
import platform
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import structlog

from core.errors import DocumentRejected, KnowledgeError
from core.settings import Settings
from knowledge.blobs import BlobStore, create_blobs
from knowledge.chunking import Chunk, iter_chunks
from knowledge.embedders import Embedder, HashingEmbedder, create_embedder
from knowledge.fetch import FetchPolicy, check_url, fetch_pdf
from knowledge.pdf import open_pages
from knowledge.vectors import DeadLetter, DocumentRecord, KnowledgeBase, StoredChunk

log = structlog.get_logger("livetutor.knowledge")

TASKS = ("prefetch_pdf", "index_document", "reindex_document")
# What reindex_document returns for a document already indexed with the configured embedders.
CURRENT = "current"
# How often (at most) an indexing job reports progress.
_PROGRESS_EVERY_S = 0.25


class JobInterrupted(KnowledgeError):
    """The process is stopping: the job stopped between batches and runs again at start."""


def new_document_id() -> str:
    """A random document id."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class Ingest:
    """Everything a document job needs, built once per process."""

    settings: Settings
    kb: KnowledgeBase
    blobs: BlobStore
    embedder: Embedder
    lexical: Embedder | None
    notify: Callable[[DocumentRecord], None]
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        notify: Callable[[DocumentRecord], None] | None = None,
        kb: KnowledgeBase | None = None,
    ) -> Ingest:
        """Open the configured stores and embedders."""
        map_large_blocks()
        embedder = create_embedder(settings)
        lexical = create_embedder(settings, "hashing") if settings.knowledge.hybrid else None
        if lexical is not None and lexical.name == embedder.name:
            lexical = None
        return cls(
            settings=settings,
            kb=kb or KnowledgeBase.open(settings),
            blobs=create_blobs(settings),
            embedder=embedder,
            lexical=lexical,
            notify=notify or (lambda record: None),
        )

    @property
    def embedders(self) -> list[Embedder]:
        """The embedders each chunk is written with."""
        return [self.embedder] if self.lexical is None else [self.embedder, self.lexical]

    # -- registering ---------------------------------------------------------

    def add_upload(
        self, course: str, filename: str, data: bytes, *, user: str, session: str = ""
    ) -> tuple[DocumentRecord, bool]:
        """Store and register an upload; (record, False) when the same bytes are already there."""
        sha = hashlib.sha256(data).hexdigest()
        existing = self.kb.find_by_hash(course, sha)
        if existing is not None:
            return existing, False
        self._check_room(course)
        doc_id = new_document_id()
        title = PurePath(filename or "document.pdf").stem[:200] or "document"
        record = DocumentRecord(
            id=doc_id,
            course=course,
            title=title,
            sha256=sha,
            size_bytes=len(data),
            blob=blob_key(course, doc_id),
            user=user,
            session=session,
        )
        self.blobs.put(record.blob, data)
        self.kb.ensure_course(course)
        self.kb.put_document(record)
        log.info("document.queued", document=doc_id, course=course, size_bytes=len(data))
        return record, True

    def add_url(self, course: str, url: str, *, user: str, session: str = "") -> DocumentRecord:
        """Register a URL to prefetch; :class:`DocumentRejected` for one that is never fetched."""
        # Refused here, before it is stored: a password in the URL would be
        # kept in the registry and shown in the course's document list.
        parts = check_url(url)
        self._check_room(course)
        doc_id = new_document_id()
        name = PurePath(parts.path).name or parts.hostname or "document"
        record = DocumentRecord(
            id=doc_id,
            course=course,
            title=PurePath(name).stem[:200] or "document",
            url=url,
            user=user,
            session=session,
        )
        self.kb.ensure_course(course)
        self.kb.put_document(record)
        log.info("document.queued", document=doc_id, course=course, source="url")
        return record

    def _check_room(self, course: str) -> None:
        limit = self.settings.knowledge.max_documents_per_course
        if len(self.kb.documents(course)) >= limit:
            raise DocumentRejected(f"the course already has {limit} documents")

    # -- jobs ----------------------------------------------------------------

    def run(self, task: str, doc_id: str) -> str:
        """Run one job by name; returns the document's status afterwards."""
        if task == "prefetch_pdf":
            return self.prefetch(doc_id)
        if task == "index_document":
            return self.index(doc_id)
        if task == "reindex_document":
            return self.reindex(doc_id)
        raise ValueError(f"unknown task {task!r}")

    def prefetch(self, doc_id: str) -> str:
        """Fetch the document's URL (once), then index it."""
        record = self.kb.get_document(doc_id)
        if record is None:
            return "gone"
        if record.status == "ready":
            return "ready"
        if not record.sha256:
            k = self.settings.knowledge
            policy = FetchPolicy(
                allowlist=k.fetch_allowlist,
                timeout_s=k.fetch_timeout_s,
                max_bytes=k.max_upload_bytes,
                max_redirects=k.fetch_max_redirects,
            )
            self._set(record, status="indexing", progress=0.01)
            body, _ = fetch_pdf(record.url, policy)
            sha = hashlib.sha256(body).hexdigest()
            twin = self.kb.find_by_hash(record.course, sha)
            if twin is not None and twin.id != doc_id:
                raise DocumentRejected(f"the same file is already document {twin.id}")
            record.blob = blob_key(record.course, doc_id)
            self.blobs.put(record.blob, body)
            record.sha256, record.size_bytes = sha, len(body)
            self.kb.put_document(record)
        return self.index(doc_id)

    def index(self, doc_id: str) -> str:
        """Extract, chunk, embed and write the document's chunks, reporting progress."""
        record = self.kb.get_document(doc_id)
        if record is None:
            return "gone"
        if record.status == "ready":
            return "ready"
        try:
            return self._index(record)
        finally:
            release_memory()

    def reindex(self, doc_id: str) -> str:
        """Embed the document again from its stored file, unless its chunks are current.

        A ready document is current when each configured embedder's collection holds
        exactly its chunks; then nothing is done and :data:`CURRENT` is returned, so
        re-running a re-index only finishes what is left. Any other document is
        indexed as :meth:`index` would (a re-index that failed and was replayed).
        """
        record = self.kb.get_document(doc_id)
        if record is None:
            return "gone"
        if record.status == "ready" and self.is_current(record):
            return CURRENT
        try:
            return self._index(record)
        finally:
            release_memory()

    def is_current(self, record: DocumentRecord) -> bool:
        """Every configured embedder's collection holds exactly the document's chunks."""
        return record.chunks > 0 and all(
            self.kb.count_chunks(record.course, embedder.name, record.id) == record.chunks
            for embedder in self.embedders
        )

    def _index(self, record: DocumentRecord) -> str:
        """Stream the pages through chunking and embedding, one batch of chunks at a time.

        Memory stays bounded by the batch, not the document: the child writes the pages
        to a temporary file, pages are read back one at a time, and each batch of
        ``LIVETUTOR_EMBED_BATCH`` chunks is embedded and written before the next is made.
        While indexing, the record's ``pages`` is the page count and ``chunks`` the
        chunks written so far; ``progress`` follows the pages.
        """
        k = self.settings.knowledge
        doc_id = record.id
        started = time.monotonic()
        data = self.blobs.get(record.blob)
        self._set(record, status="indexing", progress=0.02, pages=0, chunks=0)
        with open_pages(
            data,
            max_pages=k.max_pages,
            max_text_bytes=k.max_text_bytes,
            timeout_s=k.extract_timeout_s,
            memory_bytes=k.extract_memory_bytes,
        ) as pages:
            del data
            if pages.title:
                record.title = pages.title
            total_pages = pages.page_count
            self._set(record, progress=0.05, pages=total_pages)
            chunks = iter_chunks(pages, words=k.chunk_words, overlap=k.chunk_overlap_words)
            written = 0
            last_report = time.monotonic()
            while batch := list(itertools.islice(chunks, k.embed_batch)):
                if self.stopping.is_set():
                    raise JobInterrupted("stopping")
                self._write_batch(record, batch)
                # The batch's embedding runs left free pages all over the heap: hand them
                # back now, or each batch's runs land on fresh pages and the process grows.
                trim_heap()
                written += len(batch)
                if time.monotonic() - last_report >= _PROGRESS_EVERY_S:
                    last_report = time.monotonic()
                    if self.kb.get_document(doc_id) is None:
                        return self._deleted_while_indexing(record)
                    done = batch[-1].page / max(total_pages, 1)
                    self._set(record, progress=0.05 + 0.94 * done, chunks=written)
        if not written:
            raise DocumentRejected("the PDF has no extractable text (scanned images only?)")
        if self.kb.get_document(doc_id) is None:
            return self._deleted_while_indexing(record)
        for embedder in self.embedders:
            # Chunks of an earlier, longer run of this job (chunking settings changed).
            self.kb.delete_chunks(record.course, embedder.name, doc_id, keep_below=written)
        record.chunks = written
        # Stored ready, then the course's version recomputed from its ready documents,
        # and only then announced: whoever sees "ready" sees the new version. It retires
        # the course's cached answers; whoever runs this job warms them again
        # (tasks.jobs in a worker, the runtime in process, on "ready").
        self._set(record, notify=False, status="ready", progress=1.0, reason="")
        self.kb.bump_version(record.course, self.embedder.name)
        self._notify(record)
        log.info(
            "document.indexed",
            document=doc_id,
            course=record.course,
            pages=record.pages,
            chunks=record.chunks,
            elapsed_s=round(time.monotonic() - started, 2),
        )
        return "ready"

    def _write_batch(self, record: DocumentRecord, batch: list[Chunk]) -> None:
        texts = [f"{c.heading}\n{c.text}" if c.heading else c.text for c in batch]
        for embedder in self.embedders:
            vectors = embedder.embed(texts)
            stored = [
                StoredChunk(f"{record.id}:{c.index}", c.text, c.page, c.heading, v)
                for c, v in zip(batch, vectors, strict=True)
            ]
            self.kb.write_chunks(record.course, embedder.name, record.id, record.title, stored)

    def _deleted_while_indexing(self, record: DocumentRecord) -> str:
        # Deleted while being indexed: take back what this run wrote.
        for embedder in self.embedders:
            self.kb.delete_chunks(record.course, embedder.name, record.id)
        log.info("document.deleted_while_indexing", document=record.id)
        return "gone"

    def delete(self, doc_id: str) -> DocumentRecord | None:
        """Remove the document, its chunks and its file; the course version changes."""
        record = self.kb.get_document(doc_id)
        if record is None:
            return None
        for embedder in self.embedders:
            self.kb.delete_chunks(record.course, embedder.name, doc_id)
        if record.blob:
            self.blobs.delete(record.blob)
        self.kb.delete_document_record(doc_id)
        self.kb.bump_version(record.course, self.embedder.name)
        log.info("document.deleted", document=doc_id, course=record.course)
        return record

    def dead_letter(self, task: str, doc_id: str, reason: str, attempts: int) -> None:
        """Mark the document failed and keep a dead letter to replay later."""
        record = self.kb.get_document(doc_id)
        if record is not None:
            self._set(record, status="failed", reason=reason)
        letter = DeadLetter(
            id=f"{task}:{doc_id}",
            task=task,
            document=doc_id,
            reason=reason,
            failed_at=time.time(),
            attempts=attempts,
        )
        self.kb.add_dead_letter(letter)
        log.warning("document.dead_letter", document=doc_id, task=task, reason=reason)

    def prepare_replay(self, letter_id: str) -> DeadLetter:
        """Take a dead letter out and requeue its document; the caller submits the job."""
        letters = {d.id: d for d in self.kb.dead_letters()}
        letter = letters.get(letter_id)
        if letter is None:
            raise KeyError(letter_id)
        record = self.kb.get_document(letter.document)
        if record is not None:
            self._set(record, status="queued", progress=0.0, reason="")
        self.kb.remove_dead_letter(letter_id)
        return letter

    def _set(self, record: DocumentRecord, *, notify: bool = True, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(record, name, value)
        self.kb.put_document(record)
        if notify:
            self._notify(record)

    def _notify(self, record: DocumentRecord) -> None:
        try:
            self.notify(record)
        except Exception:
            log.warning("document.notify_failed", document=record.id, exc_info=True)


def release_memory() -> None:
    """Hand the memory an indexing run freed back to the system.

    Freed memory otherwise stays in the C allocator's per-thread arenas (glibc keeps
    what the embedding threads used), and the process keeps its peak size after the
    job. ``malloc_trim`` is glibc's; elsewhere this only collects garbage.
    """
    gc.collect()
    trim_heap()


def map_large_blocks() -> None:
    """Have glibc serve blocks of 1 MiB or more from their own mappings, unmapped on free.

    By default glibc raises its mmap threshold (up to 32 MiB) each time such a block is
    freed, so after the first embedding run the runs' tensors come from the heap, whose
    freed pages stay resident, and the process grows run after run (measured: 256 chunks
    embedded peak at 692 MiB and keep 346 MiB; with the threshold fixed, 376 and 197).
    A fixed threshold turns that adjustment off. Process-wide, through ``ctypes``; a
    no-op without glibc.
    """
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


def trim_heap() -> None:
    """glibc's ``malloc_trim(0)``: free pages of the C heap go back to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _glibc()
# mallopt's parameter number (malloc.h) and the size from which blocks are mapped.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1 << 20


def blob_key(course: str, doc_id: str) -> str:
    """Where a document's file is stored."""
    return f"{hashlib.blake2b(course.encode(), digest_size=8).hexdigest()}/{doc_id}.pdf"


__all__ = ["CURRENT", "TASKS", "HashingEmbedder", "Ingest"]
