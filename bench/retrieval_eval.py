"""Retrieval quality on the shared textbook: is the right page among the cited sources?

Indexes ``../shared/corpus/introduction-philosophy-2e.pdf`` once with every chunk
stored under both the MiniLM and the hashing embedder (what ``LIVETUTOR_HYBRID``
does), then asks three sets of questions:

1. :mod:`bench.textbook_questions` (the older set, 50 questions) three ways: hashing
   alone, MiniLM alone, and both fused (the default);
2. :mod:`bench.learner_questions` (385 questions as learners ask them) with the default
   ranking, its tuning and held-out parts apart, per style;
3. :mod:`bench.demo_questions` (43) over the bundled demo course, as its BM25
   retriever serves it.

A covered question counts as answered when one of its pages is among the ``k``
passages the tutor would cite (``LIVETUTOR_TOP_K``, 4) and the retriever did not judge
the course to skip it (``Passage.covers`` of the first passage); a ``not_covered``
question counts when the retriever judged so (or found nothing). The run also prints
the "not covered" threshold the tuning part alone would choose, beside the one in
``knowledge/retriever.py``.

    python -m bench.retrieval_eval [--k 4] [--index-dir DIR]

``--index-dir`` keeps the index for a later run (indexing MiniLM takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from bench import demo_questions, learner_questions
from bench._common import REPO_ROOT, fmt, machine, table
from bench.learner_questions import STYLES, LearnerQuestion, held_out
from bench.textbook_questions import QUESTIONS
from core.retrieval import Passage
from core.settings import Settings
from knowledge.demo_course import DEMO_COURSE, demo_passages, demo_retriever
from knowledge.embedders import create_embedder
from knowledge.ingest import Ingest
from knowledge.pdf import extract_pages
from knowledge.retriever import NOT_COVERED_BELOW, CourseRetriever

# The share of answerable questions (covered, page found) the "not covered" judgement
# must leave alone: turning one away costs less than a confident answer from an
# unrelated page, but a tutor that often denies its course is no use either.
KEEP_ANSWERABLE = 0.95

TEXTBOOK = REPO_ROOT.parent / "shared" / "corpus" / "introduction-philosophy-2e.pdf"
COURSE = "philosophy"
_SPACES = re.compile(r"\s+")
_FOLD = str.maketrans({"\u2019": "'", "\u2018": "'", "\u2013": "-", "\u2014": "-"})


def _plain(text: str) -> str:
    return _SPACES.sub(" ", text).translate(_FOLD).lower()


def check_questions(pages: list[str]) -> None:
    """Every question's evidence is on its first page (a typo in a page number fails here)."""
    for q in QUESTIONS:
        text = pages[q.pages[0] - 1].replace("\n", " ").lower()
        if q.evidence.lower() not in text:
            raise SystemExit(f"evidence {q.evidence!r} is not on page {q.pages[0]}: {q.text}")


def check_learner_questions(pages: list[str], questions: list[LearnerQuestion]) -> None:
    """A covered question's evidence is on its first page; a not-covered one's on no page."""
    plain = [_plain(p) for p in pages]
    for q in questions:
        evidence = _plain(q.evidence)
        if q.covered and evidence not in plain[q.pages[0] - 1]:
            raise SystemExit(f"evidence {q.evidence!r} is not on page {q.pages[0]}: {q.text}")
        if not q.covered:
            found = [n for n, p in enumerate(plain, 1) if re.search(rf"\b{re.escape(evidence)}", p)]
            if found:
                raise SystemExit(f"{q.evidence!r} of a not-covered question is on {found}")


class Outcome(NamedTuple):
    question: LearnerQuestion
    answered: bool  # right page cited (covered) or judged not covered (not covered)
    found: bool  # a right page among the passages, whatever the judgement
    first: bool  # the first passage is on a right page
    relevance: float  # the first passage's score (0 when nothing was found)
    cited: list[int]


def judge(q: LearnerQuestion, passages: list[Passage]) -> Outcome:
    cited = [p.page for p in passages]
    covered = bool(passages) and passages[0].covers
    found = any(page in q.pages for page in cited)
    answered = (covered and found) if q.covered else not covered
    first = bool(cited) and cited[0] in q.pages
    return Outcome(q, answered, found, first, passages[0].score if passages else 0.0, cited)


def share(outcomes: list[Outcome], style: str | None = None) -> tuple[float, int]:
    """Share answered: of covered questions (style None), or of one style."""
    chosen = [
        o for o in outcomes if (o.question.covered if style is None else o.question.style == style)
    ]
    return (sum(o.answered for o in chosen) / len(chosen) if chosen else 0.0), len(chosen)


def learner_table(title: str, parts: dict[str, list[Outcome]]) -> tuple[str, dict[str, object]]:
    """One row per part: covered questions answered, each style, first source."""
    rows = []
    results: dict[str, object] = {}
    for part, outcomes in parts.items():
        covered = [o for o in outcomes if o.question.covered]
        all_share, n_all = share(outcomes)
        row = [part, f"{fmt(100 * all_share)} % of {n_all}"]
        result: dict[str, object] = {"covered": all_share, "n": n_all}
        for style in STYLES:
            value, n = share(outcomes, style)
            row.append(f"{fmt(100 * value)} % of {n}" if n else "-")
            result[style] = value
        found = sum(o.found for o in covered) / max(len(covered), 1)
        first = sum(o.first for o in covered) / max(len(covered), 1)
        row += [fmt(100 * found) + " %", fmt(100 * first) + " %"]
        result |= {"found_ignoring_judgement": found, "first_source": first}
        rows.append(row)
        results[part] = result
    headers = ["part", "covered: right page", *STYLES, "found (no judgement)", "first source"]
    return table(headers, rows, title=title), results


def calibrate(outcomes: list[Outcome]) -> float:
    """The "not covered" threshold: the highest that keeps ``KEEP_ANSWERABLE`` covered.

    Of the covered questions whose page is found, at least that share must score at or
    above the threshold (judged covered); below that bound, the higher the threshold,
    the more not-covered questions it catches. Tried halfway between neighbouring
    relevances.
    """
    covered = [o.relevance for o in outcomes if o.question.covered and o.found]
    others = [o.relevance for o in outcomes if not o.question.covered]
    values = sorted(set(covered + others))
    best = values[0] if values else 0.0
    for low, high in itertools.pairwise(values):
        t = (low + high) / 2
        if sum(r >= t for r in covered) >= KEEP_ANSWERABLE * len(covered):
            best = t
    return best


def older_set(setups: dict[str, CourseRetriever], k: int, pages: int) -> dict[str, object]:
    rows = []
    results: dict[str, object] = {}
    for name, retriever in setups.items():
        hits = {"all": 0, "worded": 0, "paraphrased": 0, "top1": 0}
        for q in QUESTIONS:
            cited = [p.page for p in retriever.search(COURSE, q.text, k)]
            found = any(page in q.pages for page in cited)
            hits["all"] += found
            hits["paraphrased" if q.paraphrased else "worded"] += found
            hits["top1"] += bool(cited) and cited[0] in q.pages
        n_para = sum(q.paraphrased for q in QUESTIONS)
        result = {
            "all": hits["all"] / len(QUESTIONS),
            "worded": hits["worded"] / (len(QUESTIONS) - n_para),
            "paraphrased": hits["paraphrased"] / n_para,
            "top1": hits["top1"] / len(QUESTIONS),
        }
        results[name] = result
        rows.append([name, *(fmt(100 * result[c]) + " %" for c in result)])
    n_para = sum(q.paraphrased for q in QUESTIONS)
    print(
        table(
            ["ranking", f"right page in top {k}", "worded", "paraphrased", "first source"],
            rows,
            title=f"older set: {len(QUESTIONS)} questions ({n_para} paraphrased), {pages} pages",
        )
    )
    return results


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
    check_learner_questions(pages, learner_questions.QUESTIONS)
    demo_pages: dict[int, str] = {}
    for passage in demo_passages():
        demo_pages[passage.page] = demo_pages.get(passage.page, "") + " " + passage.text
    check_learner_questions([demo_pages[n] for n in sorted(demo_pages)], demo_questions.QUESTIONS)
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
    results: dict[str, object] = {"older": older_set(setups, args.k, len(pages))}

    default = setups["hybrid (minilm + hashing)"]
    outcomes = [
        judge(q, default.search(COURSE, q.text, args.k)) for q in learner_questions.QUESTIONS
    ]
    tuning = [o for o in outcomes if not held_out(o.question)]
    parts = {"tuning": tuning, "held-out": [o for o in outcomes if held_out(o.question)]}
    for o in tuning:
        if not o.answered:
            q = o.question
            print(f"  tuning missed [{q.style}] {q.text} (pages {q.pages}; cited {o.cited};")
            print(f"    relevance {o.relevance:.3f})")
    text, results["learner"] = learner_table(
        f"learner set: {len(outcomes)} questions, default ranking, top {args.k}", parts
    )
    print()
    print(text)
    print(
        f"'not covered' threshold the tuning part picks: {calibrate(tuning):.3f}"
        f" (in knowledge/retriever.py: {NOT_COVERED_BELOW})"
    )

    demo = demo_retriever()
    demo_outcomes = [
        judge(q, asyncio.run(demo.retrieve(DEMO_COURSE, q.text, args.k)))
        for q in demo_questions.QUESTIONS
    ]
    text, results["demo"] = learner_table(
        f"demo course: {len(demo_outcomes)} questions, BM25, top {args.k}",
        {
            "tuning": [o for o in demo_outcomes if not held_out(o.question)],
            "held-out": [o for o in demo_outcomes if held_out(o.question)],
        },
    )
    print()
    print(text)
    for retriever in setups.values():
        retriever.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
