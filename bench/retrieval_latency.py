"""Retrieval latency with 100,000 chunks in one course.

Takes the textbook's chunks as indexed by ``bench.retrieval_eval`` (run that first
with the same ``--index-dir``), and fills one course with ``--chunks`` of them:
each original's vector plus a little noise (renormalised), so the collection has
the shape of a real 100,000-chunk course (dimension, neighbourhood structure)
without embedding 100,000 texts. Then times ``CourseRetriever.search`` (question
embedding, chromadb query, fusion, the "not covered" judgement, de-duplication) for
the questions of :mod:`bench.learner_questions`.

    python -m bench.retrieval_latency --index-dir DIR [--chunks 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import fmt, machine, summarize, table
from bench.learner_questions import QUESTIONS
from core.settings import Settings
from knowledge.embedders import create_embedder
from knowledge.retriever import CourseRetriever
from knowledge.vectors import KnowledgeBase, course_collection_name, create_client

SOURCE_COURSE = "philosophy"
COURSE = "big"
_BATCH = 5_000


def fill(kb: KnowledgeBase, source: KnowledgeBase, embedder: str, n: int, seed: int) -> float:
    """Copy ``n`` noisy chunks into the big course; returns the seconds it took."""
    got: Any = source.client.get_collection(
        course_collection_name(SOURCE_COURSE, embedder), embedding_function=None
    ).get(include=["embeddings", "documents", "metadatas"])
    vectors = np.asarray(got["embeddings"], dtype=np.float32)
    texts, metas = got["documents"], got["metadatas"]
    rng = np.random.default_rng(seed)
    col = kb._collection(course_collection_name(COURSE, embedder))
    started = time.monotonic()
    for start in range(0, n, _BATCH):
        idx = np.arange(start, min(start + _BATCH, n)) % len(vectors)
        noisy = vectors[idx] + rng.normal(0, 0.02, size=(len(idx), vectors.shape[1])).astype(
            np.float32
        )
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        col.add(
            ids=[f"copy{start + j}" for j in range(len(idx))],
            embeddings=noisy,
            documents=[texts[i] for i in idx],
            metadatas=[
                {**metas[i], "document": f"copy{(start + j) // 2000}"} for j, i in enumerate(idx)
            ],
        )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work-dir", type=Path)
    args = parser.parse_args()
    print(machine())
    settings = Settings.from_env({}, data_dir=args.index_dir)
    source = KnowledgeBase(create_client(settings))
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="livetutor-latency-"))
    kb = KnowledgeBase(create_client(Settings.from_env({}, data_dir=work)))
    kb.ensure_course(COURSE)
    minilm = create_embedder(settings, "minilm")
    hashing = create_embedder(settings, "hashing")
    for embedder in (minilm, hashing):
        name = course_collection_name(COURSE, embedder.name)
        have = kb._collection(name).count()
        if have < args.chunks:
            seconds = fill(kb, source, embedder.name, args.chunks, seed=len(embedder.name))
            print(f"filled {args.chunks:,} {embedder.name} chunks in {seconds:.0f} s")
    setups = {
        "minilm": CourseRetriever(kb, minilm),
        "hybrid (minilm + hashing)": CourseRetriever(kb, minilm, hashing),
        "hashing": CourseRetriever(kb, hashing),
    }
    rows = []
    questions = [q.text for q in QUESTIONS]
    for label, retriever in setups.items():
        retriever.refresh_sync()
        for q in questions[:10]:
            retriever.search(COURSE, q, 4)  # warm up
        latencies, embedding = [], []
        for i in range(args.queries):
            # A new question each time (the retriever caches recent question vectors).
            question = f"{questions[i % len(questions)]} ({i})"
            t0 = time.perf_counter()
            retriever.embedder.embed([question])
            embedding.append((time.perf_counter() - t0) * 1000)
            question = f"{question}."
            t0 = time.perf_counter()
            retriever.search(COURSE, question, 4)
            latencies.append((time.perf_counter() - t0) * 1000)
        stats, embed = summarize(latencies), summarize(embedding)
        rows.append(
            [
                label,
                fmt(args.chunks),
                fmt(stats["p50"], 1),
                fmt(stats["p90"], 1),
                fmt(stats["p99"], 1),
                fmt(embed["p50"], 1),
            ]
        )
        retriever.close()
    print(
        table(
            ["retrieval", "chunks", "p50 ms", "p90 ms", "p99 ms", "question embedding p50 ms"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
