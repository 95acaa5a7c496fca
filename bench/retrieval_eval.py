"""Retrieval quality on the shared textbook: is the right page among the cited sources?

Indexes ``../shared/corpus/introduction-philosophy-2e.pdf`` once with every chunk
stored under both the MiniLM and the hashing embedder (what ``LIVETUTOR_HYBRID``
does), then asks the questions of :mod:`bench.textbook_questions` three ways:
hashing alone, MiniLM alone, and both fused by reciprocal rank. A question counts
as answered when one of its pages is among the ``k`` passages the tutor would cite
(``LIVETUTOR_TOP_K``, 4).

    python -m bench.retrieval_eval [--k 4] [--index-dir DIR]

``--index-dir`` keeps the index for a later run (indexing MiniLM takes minutes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench._common import REPO_ROOT, fmt, machine, table
from bench.textbook_questions import QUESTIONS
from core.settings import Settings
from knowledge.embedders import create_embedder
from knowledge.ingest import Ingest
from knowledge.pdf import extract_pages
from knowledge.retriever import CourseRetriever

TEXTBOOK = REPO_ROOT.parent / "shared" / "corpus" / "introduction-philosophy-2e.pdf"
COURSE = "philosophy"


def check_questions(pages: list[str]) -> None:
    """Every question's evidence is on its first page (a typo in a page number fails here)."""
    for q in QUESTIONS:
        text = pages[q.pages[0] - 1].replace("\n", " ").lower()
        if q.evidence.lower() not in text:
            raise SystemExit(f"evidence {q.evidence!r} is not on page {q.pages[0]}: {q.text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--index-dir", type=Path)
    args = parser.parse_args()
    print(machine())
    data = TEXTBOOK.read_bytes()
    pages = extract_pages(
        data, max_pages=2000, max_text_bytes=50_000_000, timeout_s=300, memory_bytes=0
    ).pages
    check_questions(pages)
    root = args.index_dir or Path(tempfile.mkdtemp(prefix="livetutor-eval-"))
    settings = Settings.from_env(
        {}, data_dir=root, knowledge={"embedder": "minilm", "hybrid": True}
    )
    ingest = Ingest.create(settings)
    record, created = ingest.add_upload(COURSE, "textbook.pdf", data, user="bench")
    if created or record.status != "ready":
        started = time.monotonic()
        ingest.index(record.id)
        print(f"indexed {len(pages)} pages in {time.monotonic() - started:.0f} s (both embedders)")
    minilm = create_embedder(settings, "minilm")
    hashing = create_embedder(settings, "hashing")
    setups = {
        "hashing": CourseRetriever(ingest.kb, hashing),
        "minilm": CourseRetriever(ingest.kb, minilm),
        "hybrid (minilm + hashing)": CourseRetriever(ingest.kb, minilm, hashing),
    }
    for retriever in setups.values():
        retriever.refresh_sync()
    rows = []
    results: dict[str, dict[str, float]] = {}
    for name, retriever in setups.items():
        hits = {"all": 0, "worded": 0, "paraphrased": 0, "top1": 0}
        misses = []
        for q in QUESTIONS:
            cited = [p.page for p in retriever.search(COURSE, q.text, args.k)]
            found = any(page in q.pages for page in cited)
            hits["all"] += found
            hits["paraphrased" if q.paraphrased else "worded"] += found
            hits["top1"] += bool(cited) and cited[0] in q.pages
            if not found:
                misses.append(f"{q.text} (p. {q.pages[0]}; cited {cited})")
        n_para = sum(q.paraphrased for q in QUESTIONS)
        n_word = len(QUESTIONS) - n_para
        share = {
            "all": hits["all"] / len(QUESTIONS),
            "worded": hits["worded"] / n_word,
            "paraphrased": hits["paraphrased"] / n_para,
            "top1": hits["top1"] / len(QUESTIONS),
        }
        results[name] = share
        rows.append(
            [
                name,
                fmt(100 * share["all"]) + " %",
                fmt(100 * share["worded"]) + " %",
                fmt(100 * share["paraphrased"]) + " %",
                fmt(100 * share["top1"]) + " %",
            ]
        )
        for miss in misses:
            print(f"  {name} missed: {miss}")
    n_para = sum(q.paraphrased for q in QUESTIONS)
    print()
    print(
        table(
            ["ranking", f"right page in top {args.k}", "worded", "paraphrased", "first source"],
            rows,
            title=f"{len(QUESTIONS)} questions ({n_para} paraphrased), {len(pages)} pages",
        )
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
