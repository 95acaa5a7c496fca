"""Typing predictions: latency of one prediction in the pod, on the shared textbook.

Builds the phrase index the pod builds for a course (headings and recurring word
groups of the textbook's chunks), then replays typing: every prefix of every
question of :mod:`bench.textbook_questions`, as a learner's keystrokes would send
them, timing each prediction plus the encoding of its ``predictions`` frame
(what the pod does between receiving ``typing`` and queueing the answer).

    python -m bench.predictions
"""

from __future__ import annotations

import time

from bench._common import REPO_ROOT, fmt, machine, summarize, table
from bench.textbook_questions import QUESTIONS
from knowledge.chunking import chunk_pages
from knowledge.pdf import extract_pages
from knowledge.predictions import PhraseIndex
from realtime import protocol as p

TEXTBOOK = REPO_ROOT.parent / "shared" / "corpus" / "introduction-philosophy-2e.pdf"


def main() -> None:
    print(machine())
    pages = extract_pages(
        TEXTBOOK.read_bytes(),
        max_pages=2000,
        max_text_bytes=50_000_000,
        timeout_s=300,
        memory_bytes=0,
    ).pages
    chunks = chunk_pages(pages, words=180, overlap=40)
    started = time.perf_counter()
    index = PhraseIndex.build((c.heading, c.text) for c in chunks)
    build_s = time.perf_counter() - started
    typed = [q.text[:n] for q in QUESTIONS for n in range(1, len(q.text) + 1)]
    for text in typed[:200]:  # warm up
        index.predict(text)
    latencies: list[float] = []
    answered = 0
    for _ in range(3):
        for text in typed:
            t0 = time.perf_counter()
            items = index.predict(text)
            p.encode(p.predictions(text, items))
            latencies.append(time.perf_counter() - t0)
            answered += bool(items)
    stats = summarize([s * 1000 for s in latencies])
    print(
        f"phrase index: {len(index.phrases):,} phrases from {len(chunks):,} chunks "
        f"built in {build_s:.2f} s"
    )
    print(
        table(
            ["predictions", "count", "with items", "p50 ms", "p90 ms", "p99 ms", "max ms"],
            [
                [
                    "textbook, every keystroke",
                    fmt(len(latencies)),
                    fmt(100 * answered / len(latencies)) + " %",
                    fmt(stats["p50"], 3),
                    fmt(stats["p90"], 3),
                    fmt(stats["p99"], 3),
                    fmt(stats["max"], 3),
                ]
            ],
        )
    )
    for text in ("what is the golden", "brain in a v", "selective att", "hasty gen"):
        print(f"  {text!r} -> {index.predict(text)}")


if __name__ == "__main__":
    main()
