"""A three-page course indexed as a pod indexes one: MiniLM and the lexical embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from knowledge.demo_course import demo_retriever
from knowledge.embedders import create_embedder, minilm_installed
from knowledge.retriever import CourseRetriever
from knowledge.vectors import KnowledgeBase, StoredChunk, create_client

COURSE = "harbour"
DOCUMENT = "Harbour Rules"
PAGES = [
    (
        "Harbour Safety",
        "Every vessel entering the harbour must slow to five knots and give way to "
        "the ferry. The harbour master assigns each berth and records the tides.",
    ),
    (
        "Knots and Ropes",
        "A bowline makes a fixed loop at the end of a rope that does not slip. "
        "Sailors tie a clove hitch to fasten a line quickly around a post.",
    ),
    (
        "Weather at Sea",
        "Falling pressure and a backing wind warn of a coming storm. Small boats "
        "should return to port before the wind rises above force six.",
    ),
]


def harbour_retriever(data_dir: Path) -> CourseRetriever:
    """The harbour course (one chunk per page) and the demo course; skips without MiniLM."""
    if not minilm_installed():
        pytest.skip("needs the minilm extra")
    settings = Settings.from_env({}, data_dir=data_dir)
    kb = KnowledgeBase(create_client(settings))
    minilm = create_embedder(settings, "minilm")
    hashing = create_embedder(settings, "hashing")
    kb.ensure_course(COURSE)
    texts = [f"{heading}\n{text}" for heading, text in PAGES]
    for embedder in (minilm, hashing):
        vectors = embedder.embed(texts)
        chunks = [
            StoredChunk(f"doc:{n}", text, n + 1, heading, vector)
            for n, ((heading, text), vector) in enumerate(zip(PAGES, vectors, strict=True))
        ]
        kb.write_chunks(COURSE, embedder.name, "doc", DOCUMENT, chunks)
    retriever = CourseRetriever(kb, minilm, hashing, demo=demo_retriever())
    retriever.refresh_sync()
    return retriever
