"""Random disconnects and resumes across three pods: nothing lost, nothing repeated.

A :class:`~devtools.cluster.DevCluster` of three pods on one Redis (URL
mode), the offline tutor paced at ``--pace-ms`` (20 ms per word, 128 words
per answer). ``--learners`` learners, each its own user with its own
session, connect to a random pod, ask :data:`~bench._pods.QUESTION` and
follow the answer. Once per answer the learner drops its connection at a
random ``seq`` (1 to ``--max-drop-seq``): the TCP connection is aborted,
with no closing handshake, as a lost network would. It stays away a random
``--offline-ms`` (so that deltas pile up to be replayed), connects to a
random *other* pod and sends ``{"type": "resume", "stream": S, "after":
<last seq seen>}``. It follows the stream to its ``stream.end``, then asks
again on the new connection. The run ends once ``--disconnects`` drops
have happened; answers in flight are followed to their end.

Checks, per answer: every ``seq`` from 1 to ``stream.end.seq`` received
exactly once over both connections (``lost``: never received; ``dup``:
received again, including a replay of a seq at or below ``after``), in
increasing order, the ``stream.end`` with reason ``stop``, and the joined
text equal to the reference answer (the offline tutor is deterministic; it
is asked once before the run). At the end every stored tutor message of
every session (``GET /sessions/{id}/messages``) must equal it too.

Resume latency: from sending ``resume`` to the first frame of the stream on
the new connection (a replayed delta); reconnect: from opening the new
connection to its ``welcome``. The baseline, on the same cluster before
the main run, is the same procedure with ``--baseline-learners`` (4)
learners and ``--baseline-disconnects`` (20) drops, so the pods are nearly
idle.

Run: ``python -m bench.resume_chaos [--disconnects 1000] [--learners 60]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench._common import fmt, machine, raise_nofile_limit, summarize, table
from bench._pods import (
    HTTP_TIMEOUT_S,
    QUESTION,
    CpuMeter,
    CpuUsage,
    connect,
    offline_env,
    stored_messages,
)
from devtools.cluster import DevCluster

RESUME_P99_TARGET_MS = 20.0
RECV_TIMEOUT_S = 30.0
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass
class _Answer:
    """One answer as the learner saw it, over however many connections."""

    ask: str
    stream: str = ""
    session: str = ""
    texts: dict[int, str] = field(default_factory=dict)
    last: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    end: dict[str, Any] | None = None

    def add(self, seq: int, text: str) -> None:
        if seq in self.texts:
            self.duplicated += 1
            return
        if seq < self.last:
            self.out_of_order += 1
        self.texts[seq] = text
        self.last = max(self.last, seq)

    @property
    def lost(self) -> int:
        """Seqs up to the end's that never arrived."""
        final = self.end["seq"] if self.end else self.last
        return sum(1 for seq in range(1, final + 1) if seq not in self.texts)

    @property
    def text(self) -> str:
        """The received deltas joined in seq order."""
        return "".join(self.texts[seq] for seq in sorted(self.texts))


@dataclass
class Tally:
    """What every learner saw."""

    drops: int = 0
    answers: int = 0
    answers_ok: int = 0
    deltas: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    text_mismatch: int = 0
    resume_ms: list[float] = field(default_factory=list)
    reconnect_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Keep the first few descriptions."""
        if len(self.problems) < 8:
            self.problems.append(text)


class Chaos:
    """The shared plan: how many drops are left, and the tally."""

    def __init__(self, disconnects: int, reference: str) -> None:
        self.left = disconnects
        self.reference = reference
        self.tally = Tally()

    def take_drop(self) -> bool:
        """Claim one of the remaining drops."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def give_back(self) -> None:
        """An answer ended before its drop point: the drop goes to another answer."""
        self.left += 1

    def finish(self, answer: _Answer) -> None:
        """Count a followed answer."""
        t = self.tally
        t.answers += 1
        t.deltas += len(answer.texts) + answer.duplicated
        t.lost += answer.lost
        t.duplicated += answer.duplicated
        t.out_of_order += answer.out_of_order
        if answer.end is None:
            t.problem(f"{answer.ask}: no stream.end")
            return
        if answer.end.get("reason") != "stop":
            t.problem(f"{answer.ask}: reason {answer.end.get('reason')}")
            return
        if answer.text != self.reference:
            t.text_mismatch += 1
            t.problem(f"{answer.ask}: text differs ({len(answer.text)} of {len(self.reference)})")
            return
        if not (answer.lost or answer.duplicated or answer.out_of_order):
            t.answers_ok += 1


def _abort(ws: ClientConnection) -> None:
    """Drop the TCP connection without a closing handshake."""
    ws.transport.abort()


async def _follow(
    ws: ClientConnection, answer: _Answer, drop_at: int | None, resumed_at: float | None
) -> tuple[str, float | None]:
    """Read until the answer ends (``"end"``), the drop point (``"drop"``) or an error.

    Returns the outcome and, after a resume, the time of the stream's first frame.
    """
    first: float | None = None
    while True:
        async with asyncio.timeout(RECV_TIMEOUT_S):
            raw = await ws.recv()
        now = time.monotonic()
        frame = _decode(raw)
        kind = frame.get("type")
        if kind == "stream.start" and frame.get("ask") == answer.ask:
            answer.stream, answer.session = frame["stream"], frame["session"]
        elif kind == "delta" and frame["stream"] == answer.stream:
            if resumed_at is not None and first is None:
                first = now
            answer.add(frame["seq"], frame["text"])
            if drop_at is not None and frame["seq"] >= drop_at:
                return "drop", first
        elif kind == "stream.end" and frame["stream"] == answer.stream:
            if resumed_at is not None and first is None:
                first = now
            answer.end = frame
            return "end", first
        elif kind == "error":
            return f"error {frame.get('code')}: {frame.get('message')}", first


async def learner(
    index: int, urls: list[str], token: str, chaos: Chaos, rng: random.Random, args: Any
) -> None:
    """Ask, drop once per answer at a random seq, resume on another pod, repeat."""
    tally = chaos.tally
    pod = rng.randrange(len(urls))
    ws = await connect(urls[pod], token)
    session = ""
    asked = 0
    try:
        while chaos.left > 0:
            asked += 1
            answer = _Answer(ask=f"l{index}-{asked}")
            frame: dict[str, Any] = {"type": "ask", "id": answer.ask, "course": "demo"}
            frame["text"] = QUESTION
            if session:
                frame["session"] = session
            await ws.send(_encode(frame).decode())
            drop_at = rng.randint(1, args.max_drop_seq) if chaos.take_drop() else None
            outcome, _ = await _follow(ws, answer, drop_at, None)
            if outcome == "drop":
                tally.drops += 1
                _abort(ws)
                await asyncio.sleep(rng.uniform(*args.offline_ms) / 1000)
                pod = rng.choice([p for p in range(len(urls)) if p != pod])
                began = time.monotonic()
                ws = await connect(urls[pod], token)
                resumed_at = time.monotonic()
                tally.reconnect_ms.append((resumed_at - began) * 1000)
                resume = {"type": "resume", "stream": answer.stream, "after": answer.last}
                await ws.send(_encode(resume).decode())
                outcome, first = await _follow(ws, answer, None, resumed_at)
                if first is not None:
                    tally.resume_ms.append((first - resumed_at) * 1000)
            elif drop_at is not None:
                chaos.give_back()
            if outcome != "end":
                tally.problem(f"{answer.ask}: {outcome}")
            session = session or answer.session
            chaos.finish(answer)
    finally:
        with contextlib.suppress(ConnectionClosed, OSError):
            await ws.close()


async def reference_answer(url: str, token: str) -> tuple[str, str]:
    """Ask once; the answer text and its session."""
    ws = await connect(url, token)
    try:
        answer = _Answer(ask="reference")
        frame = {"type": "ask", "id": answer.ask, "course": "demo", "text": QUESTION}
        await ws.send(_encode(frame).decode())
        outcome, _ = await _follow(ws, answer, None, None)
    finally:
        await ws.close()
    if outcome != "end" or answer.end is None or answer.end.get("reason") != "stop":
        raise RuntimeError(f"reference answer: {outcome}")
    return answer.text, answer.stream


@dataclass
class Result:
    """One run's figures."""

    label: str
    learners: int
    tally: Tally
    wall_s: float
    cpu: CpuUsage
    stored_checked: int = 0
    stored_mismatch: int = 0


async def run_learners(
    cluster: DevCluster,
    label: str,
    learners: int,
    disconnects: int,
    reference: str,
    rng: random.Random,
    args: argparse.Namespace,
) -> Result:
    """``learners`` learners until ``disconnects`` drops; then check the stored answers."""
    urls = [pod.ws_url for pod in cluster.pods]
    chaos = Chaos(disconnects, reference)
    tokens = [cluster.token(f"chaos-{label}-{i}") for i in range(learners)]
    pids = {pod.name: pod.pid for pod in cluster.pods}
    pids["redis"] = cluster.redis[0].pid
    meter = CpuMeter(pids)
    meter.start()
    began = time.monotonic()
    outcomes = await asyncio.gather(
        *(
            learner(i, urls, token, chaos, random.Random(rng.random()), args)
            for i, token in enumerate(tokens)
        ),
        return_exceptions=True,
    )
    result = Result(label, learners, chaos.tally, time.monotonic() - began, meter.stop())
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            chaos.tally.problem(f"learner failed: {outcome!r}")
    http_url = cluster.pods[0].http_url
    for i, token in enumerate(tokens):
        for session in await _sessions(http_url, token):
            for message in await stored_messages(http_url, token, session):
                if message["role"] != "tutor":
                    continue
                result.stored_checked += 1
                if message["text"] != reference:
                    result.stored_mismatch += 1
                    chaos.tally.problem(f"{label} learner {i}: stored answer differs")
    return result


async def measure(args: argparse.Namespace) -> list[Result]:
    """The baseline (a few learners), then the full run, on one cluster."""
    env = offline_env(args.pace_ms)
    rng = random.Random(args.seed)
    async with DevCluster(pods=3, sentinels=0, replica=False, pod_env=env) as cluster:
        reference, _ = await reference_answer(
            cluster.pods[0].ws_url, cluster.token("chaos-reference")
        )
        results = []
        if args.baseline_learners:
            results.append(
                await run_learners(
                    cluster,
                    "baseline",
                    args.baseline_learners,
                    args.baseline_disconnects,
                    reference,
                    rng,
                    args,
                )
            )
        results.append(
            await run_learners(
                cluster, "load", args.learners, args.disconnects, reference, rng, args
            )
        )
    return results


async def _sessions(http_url: str, token: str) -> list[str]:
    async with httpx.AsyncClient(base_url=http_url, timeout=HTTP_TIMEOUT_S) as http:
        response = await http.get("/sessions", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return [s["id"] for s in response.json()["sessions"]]


def report(results: list[Result]) -> str:
    """The tables and the verdicts."""
    main = results[-1]
    counts_rows: list[tuple[str, Callable[[Result], int]]] = [
        ("disconnects and resumes", lambda r: r.tally.drops),
        ("answers followed", lambda r: r.tally.answers),
        ("answers complete, in order, text right", lambda r: r.tally.answers_ok),
        ("deltas received", lambda r: r.tally.deltas),
        ("lost deltas", lambda r: r.tally.lost),
        ("duplicated deltas", lambda r: r.tally.duplicated),
        ("out-of-order deltas", lambda r: r.tally.out_of_order),
        ("answers with the wrong text", lambda r: r.tally.text_mismatch),
        ("stored answers checked", lambda r: r.stored_checked),
        ("stored answers with the wrong text", lambda r: r.stored_mismatch),
    ]
    headers = ["measure", *(f"{r.learners} learners" for r in results)]
    counts = [[name, *(fmt(get(r)) for r in results)] for name, get in counts_rows]
    latency = []
    for r in results:
        for name, values in (
            ("resume -> 1st replayed", r.tally.resume_ms),
            ("reconnect -> welcome", r.tally.reconnect_ms),
        ):
            s = summarize(values)
            latency.append(
                [
                    f"{name}, {r.learners} learners",
                    fmt(len(values)),
                    *(fmt(s[k], 2) for k in ("p50", "p90", "p99", "max")),
                ]
            )
    lines = [
        table(headers, counts, title="Disconnects and resumes across 3 pods"),
        "",
        table(["latency (ms)", "n", "p50", "p90", "p99", "max"], latency),
        "",
    ]
    for r in results:
        lines.append(
            f"{r.learners} learners: {r.wall_s:.1f} s; CPU % of one core: {r.cpu.describe()}"
        )
    lost = sum(r.tally.lost for r in results)
    dup = sum(r.tally.duplicated for r in results)
    disorder = sum(r.tally.out_of_order for r in results)
    wrong = sum(r.tally.text_mismatch + r.stored_mismatch for r in results)
    problems = [p for r in results for p in r.tally.problems]
    clean = lost == dup == disorder == wrong == 0 and not problems
    p99 = summarize(main.tally.resume_ms)["p99"]
    lines += [
        f"target 0 lost, 0 duplicated: {'met' if clean else 'NOT met'} "
        f"({lost} lost, {dup} duplicated, {disorder} out of order, {wrong} wrong texts)",
        f"target resume p99 under {RESUME_P99_TARGET_MS:.0f} ms with {main.learners} learners: "
        f"{'met' if p99 < RESUME_P99_TARGET_MS else 'NOT met'} ({p99:.2f} ms)",
    ]
    if problems:
        lines += ["problems (first few):", *(f"  {p}" for p in problems[:8])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disconnects", type=int, default=1000)
    parser.add_argument("--learners", type=int, default=60)
    parser.add_argument("--pace-ms", type=float, default=20.0)
    parser.add_argument("--max-drop-seq", type=int, default=100)
    parser.add_argument(
        "--offline-ms",
        type=lambda s: tuple(float(x) for x in s.split(",")),
        default=(50.0, 300.0),
        help="how long a learner stays away: MIN,MAX",
    )
    parser.add_argument("--baseline-learners", type=int, default=4, help="0: no baseline")
    parser.add_argument("--baseline-disconnects", type=int, default=20)
    parser.add_argument("--seed", type=int, help="default random")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(2**31)
    raise_nofile_limit()
    print(machine())
    results = asyncio.run(measure(args))
    print(
        f"3 pods, 1 Redis (URL mode); offline tutor at {args.pace_ms:g} ms per word; "
        f"baseline {args.baseline_learners} learners x {args.baseline_disconnects} drops, then "
        f"{args.learners} learners x {args.disconnects} drops; "
        f"drop at seq 1..{args.max_drop_seq}, away "
        f"{args.offline_ms[0]:g}-{args.offline_ms[1]:g} ms; seed {args.seed}"
    )
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
