"""The local model (SmolLM2-135M under llama.cpp): LiveTutor's overhead, and a quality baseline.

Part 1, overhead. One ``livetutor llm`` model server; one LiveTutor pod that uses
it through the OpenAI-compatible provider. Each demo-course question is asked
twice, alternating which goes first, each after a one-token unrelated request so
that neither reuses the prompt prefix llama.cpp cached for the other: over the
pod's WebSocket (time to the first ``delta``, time to ``stream.end``), and
straight to llama.cpp with the same messages the pod sends (the same prompt
builder over the same demo passages; time to the first streamed chunk, to the
end). Temperature 0 makes both answers the same text, which the table checks:
the two paths did the same work. Tokens are counted by the model server's own
tokenizer.

Part 2, quality. The project's textbook questions (``bench/textbook_questions.py``)
are answered with LiveTutor's prompt over the passages LiveTutor retrieves
(MiniLM + hybrid, top 4), by the local model through LiveTutor's OpenAI-compatible
provider and, as a baseline in the same run, by the offline tutor. An answer
"names the key term" when it contains the question's evidence phrase (the words
that state the answer on the right page), compared without case, quotes or
punctuation.

    python -m bench.local_model [--questions 60] [--index-dir data/bench-index] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from openai import AsyncOpenAI

from bench._common import fmt, livetutor_server, machine, summarize, table, ws_connect
from bench.textbook_questions import QUESTIONS
from core.settings import Settings
from devtools.local import ModelServerProcess
from knowledge.demo_course import DEMO_COURSE, demo_retriever
from tutor.generation import answer_prompt
from tutor.llm import LLMProvider
from tutor.llm_offline import OfflineProvider
from tutor.llm_openai import OpenAIProvider

DEMO_QUESTIONS = [
    "What makes an argument valid?",
    "What is the difference between correlation and causation?",
    "What is a premise?",
    "Explain the straw man fallacy.",
    "What does it mean for an argument to be sound?",
    "How can I tell a good source from a bad one?",
]
MAX_TOKENS = 128
TEXTBOOK = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
TEXTBOOK_PDF = TEXTBOOK / "introduction-philosophy-2e.pdf"
COURSE = "philosophy"  # as in bench.retrieval_eval, so both share one --index-dir


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def names_key_term(answer: str, evidence: str) -> bool:
    """Whether ``answer`` contains the evidence phrase, ignoring case, quotes and punctuation."""
    return _norm(evidence) in _norm(answer)


async def count_tokens(http: httpx.AsyncClient, base: str, text: str) -> int:
    """Tokens of ``text`` by the model server's own tokenizer."""
    root = base.removesuffix("/v1")
    response = await http.post(f"{root}/extras/tokenize", json={"input": text})
    response.raise_for_status()
    return len(response.json()["tokens"])


async def through_livetutor(ws_url: str, token: str, question: str) -> dict[str, Any]:
    """Ask the pod; time to the first delta and to stream.end."""
    async with await ws_connect(ws_url, token) as ws:
        sent = time.perf_counter()
        await ws.send(
            json.dumps(
                {
                    "type": "ask",
                    "id": "q",
                    "course": DEMO_COURSE,
                    "text": question,
                    "mode": "explain",
                }
            )
        )
        first = 0.0
        text = []
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
            if frame["type"] == "delta":
                if not first:
                    first = time.perf_counter() - sent
                text.append(frame["text"])
            elif frame["type"] == "stream.end":
                return {
                    "ttft": first,
                    "total": time.perf_counter() - sent,
                    "text": "".join(text),
                    "model": frame.get("model"),
                    "fallback": frame.get("fallback"),
                }
            elif frame["type"] == "error":
                raise RuntimeError(f"the pod answered an error: {frame}")


async def straight_to_llama(client: AsyncOpenAI, model: str, question: str) -> dict[str, Any]:
    """The same prompt the pod builds, sent straight to llama.cpp."""
    passages = await demo_retriever().retrieve(DEMO_COURSE, question, Settings().tutor.top_k)
    prompt = answer_prompt(question, mode="explain", course=DEMO_COURSE, passages=passages)
    sent = time.perf_counter()
    stream = await client.chat.completions.create(
        model=model,
        messages=[dict(m) for m in prompt.messages],  # type: ignore[misc]
        stream=True,
        temperature=0.0,
        max_tokens=MAX_TOKENS,
    )
    first = 0.0
    text = []
    async for chunk in stream:
        piece = chunk.choices[0].delta.content if chunk.choices else None
        if piece:
            if not first:
                first = time.perf_counter() - sent
            text.append(piece)
    return {"ttft": first, "total": time.perf_counter() - sent, "text": "".join(text)}


async def forget_prompt(client: AsyncOpenAI, model: str) -> None:
    """One unrelated one-token request, so the next prompt shares no cached prefix."""
    await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say ok."}],
        max_tokens=1,
        temperature=0.0,
    )


async def overhead(model: ModelServerProcess, rounds: int) -> None:
    env = {
        **model.pod_env(),
        "LIVETUTOR_LLM_TEMPERATURE": "0",
        "LIVETUTOR_LLM_MAX_OUTPUT_TOKENS": str(MAX_TOKENS),
        "LIVETUTOR_CACHE_ANSWERS": "false",
        "LIVETUTOR_ASK_BURST": "1000",
    }
    results: dict[str, list[dict[str, Any]]] = {"LiveTutor": [], "llama.cpp": []}
    client = AsyncOpenAI(base_url=model.base_url, api_key="not-needed", max_retries=0)
    with livetutor_server(env) as pod:
        token = pod.token("bench")
        ws_url = f"ws://{pod.server.host}:{pod.server.port}/ws"
        await through_livetutor(ws_url, token, DEMO_QUESTIONS[0])  # warm both paths
        await straight_to_llama(client, model.model, DEMO_QUESTIONS[0])
        for round_ in range(rounds):
            for i, question in enumerate(DEMO_QUESTIONS):
                pod_first = (i + round_) % 2 == 0
                for path in ("LiveTutor", "llama.cpp") if pod_first else ("llama.cpp", "LiveTutor"):
                    # llama.cpp reuses the cached prefix of the previous prompt: start both
                    # paths from the same (unrelated) state so neither gets the other's work.
                    await forget_prompt(client, model.model)
                    if path == "LiveTutor":
                        result = await through_livetutor(ws_url, token, question)
                    else:
                        result = await straight_to_llama(client, model.model, question)
                    result["question"] = question
                    results[path].append(result)
    await client.close()
    async with httpx.AsyncClient(timeout=30) as http:
        for runs in results.values():
            for run in runs:
                run["tokens"] = await count_tokens(http, model.base_url, run["text"])
    same = sum(
        a["text"] == b["text"]
        for a, b in zip(results["LiveTutor"], results["llama.cpp"], strict=True)
    )
    rows = []
    figures: dict[str, dict[str, float]] = {}
    for path, runs in results.items():
        ttft = summarize([r["ttft"] * 1000 for r in runs])
        rate = summarize([r["tokens"] / r["total"] for r in runs if r["total"] > 0])
        figures[path] = {"ttft_p50_ms": ttft["p50"], "tokens_per_s_p50": rate["p50"]}
        rows.append(
            [
                path,
                fmt(ttft["p50"]),
                fmt(ttft["p90"]),
                fmt(rate["p50"]),
                fmt(sum(r["tokens"] for r in runs) / len(runs)),
            ]
        )
    lt, lc = figures["LiveTutor"], figures["llama.cpp"]
    rows.append(
        [
            "LiveTutor / llama.cpp",
            fmt(lt["ttft_p50_ms"] / lc["ttft_p50_ms"], 2) + "x",
            "",
            fmt(lt["tokens_per_s_p50"] / lc["tokens_per_s_p50"], 2) + "x",
            "",
        ]
    )
    n = len(results["LiveTutor"])
    print(
        table(
            ["path", "first token p50 ms", "p90 ms", "tokens/s p50", "tokens/answer"],
            rows,
            title=f"{model.model}: {n} answers per path, max {MAX_TOKENS} tokens, "
            f"temperature 0; same text on both paths: {same} of {n}",
        )
    )
    print(json.dumps(figures))


async def quality(model: ModelServerProcess, index_dir: Path | None, limit: int) -> None:
    from knowledge.embedders import create_embedder
    from knowledge.ingest import Ingest
    from knowledge.retriever import CourseRetriever

    root = index_dir or Path(tempfile.mkdtemp(prefix="livetutor-local-model-"))
    settings = Settings.from_env(
        {}, data_dir=root, knowledge={"embedder": "minilm", "hybrid": True}
    )
    ingest = Ingest.create(settings)
    record, created = ingest.add_upload(
        COURSE, "textbook.pdf", TEXTBOOK_PDF.read_bytes(), user="bench"
    )
    if created or record.status != "ready":
        started = time.monotonic()
        ingest.index(record.id)
        print(f"indexed the textbook in {time.monotonic() - started:.0f} s")
    retriever = CourseRetriever(
        ingest.kb, create_embedder(settings, "minilm"), create_embedder(settings, "hashing")
    )
    retriever.refresh_sync()
    llm = Settings.from_env(
        {},
        llm={
            "base_url": model.base_url,
            "model": model.model,
            "temperature": 0.0,
            "max_output_tokens": MAX_TOKENS,
            "first_token_timeout_s": 120,
            "token_timeout_s": 60,
        },
    ).llm
    providers: dict[str, LLMProvider] = {
        "local model": OpenAIProvider(llm),
        "offline tutor": OfflineProvider(llm),
    }
    questions = QUESTIONS[:limit]
    named = dict.fromkeys(providers, 0)
    named_found = dict.fromkeys(providers, 0)
    found = 0
    for q in questions:
        passages = retriever.search(COURSE, q.text, settings.tutor.top_k)
        right = any(p.page in q.pages for p in passages)
        found += right
        prompt = answer_prompt(q.text, mode="explain", course=COURSE, passages=passages)
        for name, provider in providers.items():
            text = "".join([piece async for piece in provider.stream(prompt)])
            hit = names_key_term(text, q.evidence)
            named[name] += hit
            named_found[name] += hit and right
    for provider in providers.values():
        await provider.aclose()
    retriever.close()
    rows = [
        [
            name,
            f"{named[name]} of {len(questions)}",
            fmt(100 * named[name] / len(questions)) + " %",
            f"{named_found[name]} of {found}",
        ]
        for name in providers
    ]
    print(
        table(
            ["answered by", "names the key term", "share", "of those with the right page"],
            rows,
            title=f"{len(questions)} textbook questions; the right page retrieved for "
            f"{found}; LiveTutor's explain prompt, top {settings.tutor.top_k}",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds over the demo questions")
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="textbook questions")
    parser.add_argument("--index-dir", type=Path, help="reuse a textbook index here")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp decoding threads")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as work:
        model = ModelServerProcess(
            Path(work) / "llm.log", env={"LIVETUTOR_LOCAL_THREADS": str(args.threads)}
        )
        model.start()
        try:
            asyncio.run(overhead(model, args.rounds))
            if not args.skip_quality:
                asyncio.run(quality(model, args.index_dir, args.questions))
        finally:
            model.stop()


if __name__ == "__main__":
    main()
