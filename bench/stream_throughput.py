"""Concurrent answer streams: delivery, lateness and server CPU; then the unpaced maximum.

Paced part. The offline tutor yields one word every ``--pace-ms`` (20 ms:
50 tokens/s per stream). ``--streams`` slots (default 1000: 500 connections
with 2 streams each) each ask the same question, follow the answer to its
``stream.end`` and ask again in the same session, for ``--duration-s``.
Every answer is checked: deltas with ``seq`` 1..n and no gap, ``stream.end``
naming the last seq with reason ``stop``, and text equal to the reference
answer (the offline tutor is deterministic; the reference is asked once
first). Tokens are words as the offline tutor splits them.

Lateness. Frames carry no server timestamps, so each delta is compared with
its stream's ideal schedule, anchored at the stream's first delta: a delta
that completes token k should arrive ``(k - k1) * pace`` after the first
delta (which completed token k1). Lateness is arrival minus that; it adds up
every delay after the first delta (event-loop lag in the pacing sleep and
in delivery, the client's own queueing). The baseline, in the same run, is
one stream alone on the same server.

Unpaced part. A second server with pace 0 answers as fast as it can;
``--unpaced-streams`` slots (default 200) ask repeatedly for
``--unpaced-duration-s``; the figure is the tokens/s delivered to clients.

Clients run in ``--procs`` processes. Client and server share this
machine's CPUs, so both CPU figures are printed: when the server is below
one core (it runs one event loop) while the clients use the rest, the
client side limits the figure.

Run: ``python -m bench.stream_throughput [--streams 1000] [--connections 500]``
"""

from __future__ import annotations

import argparse
import array
import asyncio
import multiprocessing
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection

from bench._common import (
    ServerProcess,
    collect,
    fmt,
    livetutor_server,
    machine,
    mint_token,
    pin_apart,
    raise_nofile_limit,
    summarize,
    table,
    ws_connect,
)
from realtime.client import TutorClient

QUESTION = "What makes an argument valid?"
# How the offline tutor splits its answer into tokens (words with their trailing space).
_TOKEN = re.compile(r"\S+\s*|\s+")
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def count_tokens(text: str) -> int:
    """Offline-tutor tokens in ``text``."""
    return len(_TOKEN.findall(text))


def server_env(pace_ms: float, streams_per_connection: int) -> dict[str, str]:
    """Offline tutor at ``pace_ms``, limits that do not get in the way of the load."""
    return {
        "LIVETUTOR_LLM_PROVIDER": "offline",
        "LIVETUTOR_LLM_OFFLINE_PACE_MS": str(pace_ms),
        "LIVETUTOR_MAX_STREAMS_PER_CONNECTION": str(streams_per_connection),
        "LIVETUTOR_ASK_RATE_PER_MIN": "1000000",
        "LIVETUTOR_ASK_BURST": "1000000",
        "LIVETUTOR_IDLE_TIMEOUT_S": "3600",
        # The same question is asked by every stream: each must be generated, not cached.
        "LIVETUTOR_CACHE_ANSWERS": "false",
    }


# -- client side (runs in worker processes) -----------------------------------


@dataclass
class Job:
    """What one client process does."""

    index: int
    url: str
    secret: str
    connections: int
    streams_per_connection: int
    duration_s: float
    pace_s: float
    expected: str
    connect_concurrency: int = 100


@dataclass
class Tally:
    """What one client process saw."""

    answers_ok: int = 0
    answers_bad: int = 0
    problems: list[str] = field(default_factory=list)
    tokens: int = 0
    # Tokens that arrived before the deadline, while every slot still asked again.
    steady_tokens: int = 0
    deltas: int = 0
    lateness_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    first_delta_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    # From an answer's last delta to its stream.end (the answer is stored and cached between).
    end_gap_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    stream_rate: array.array[float] = field(default_factory=lambda: array.array("d"))
    stream_s: float = 0.0  # summed over answers: first delta to stream.end
    connect_failed: int = 0
    last_arrival: float = 0.0
    cpu_s: float = 0.0

    def problem(self, text: str) -> None:
        """Count a bad answer and keep the first few descriptions."""
        self.answers_bad += 1
        if len(self.problems) < 5:
            self.problems.append(text)


@dataclass
class _Slot:
    """One stream slot of a connection: asks, follows, asks again."""

    name: str
    asked: int = 0
    ask_id: str = ""
    session: str = ""
    stream: str = ""
    sent_at: float = 0.0
    next_seq: int = 1
    tokens: int = 0
    first_at: float = 0.0
    first_tokens: int = 0
    last_at: float = 0.0
    parts: list[str] = field(default_factory=list)


class _Driver:
    """Runs the slots of one connection from a single reader loop."""

    def __init__(self, ws: ClientConnection, job: Job, name: str, tally: Tally) -> None:
        self.ws = ws
        self.job = job
        self.tally = tally
        self.slots = [_Slot(f"{name}-{i}") for i in range(job.streams_per_connection)]
        self.by_ask: dict[str, _Slot] = {}
        self.by_stream: dict[str, _Slot] = {}

    async def ask(self, slot: _Slot) -> None:
        slot.asked += 1
        slot.ask_id = f"{slot.name}-{slot.asked}"
        slot.stream, slot.next_seq, slot.tokens, slot.first_at = "", 1, 0, 0.0
        slot.last_at = 0.0
        slot.parts = []
        frame: dict[str, Any] = {"type": "ask", "id": slot.ask_id, "course": "demo"}
        frame["text"] = QUESTION
        if slot.session:
            frame["session"] = slot.session
        self.by_ask[slot.ask_id] = slot
        slot.sent_at = time.monotonic()
        await self.ws.send(_encode(frame).decode())

    async def run(self, deadline: float) -> None:
        for slot in self.slots:
            await self.ask(slot)
        active = len(self.slots)
        tally, pace_s = self.tally, self.job.pace_s
        while active:
            raw = await self.ws.recv()
            now = time.monotonic()
            frame = _decode(raw)
            kind = frame["type"]
            if kind == "delta":
                slot = self.by_stream[frame["stream"]]
                if frame["seq"] != slot.next_seq:
                    raise RuntimeError(f"{slot.ask_id}: seq {frame['seq']}, not {slot.next_seq}")
                slot.next_seq += 1
                text = frame["text"]
                slot.parts.append(text)
                tokens = count_tokens(text)
                slot.tokens += tokens
                if now < deadline:
                    tally.steady_tokens += tokens
                tally.deltas += 1
                slot.last_at = now
                if not slot.first_at:
                    slot.first_at, slot.first_tokens = now, slot.tokens
                    tally.first_delta_ms.append((now - slot.sent_at) * 1000)
                elif pace_s:
                    expected_at = slot.first_at + (slot.tokens - slot.first_tokens) * pace_s
                    tally.lateness_ms.append((now - expected_at) * 1000)
                tally.last_arrival = now
            elif kind == "stream.start":
                slot = self.by_ask.pop(frame["ask"])
                slot.stream, slot.session = frame["stream"], frame["session"]
                self.by_stream[slot.stream] = slot
            elif kind == "stream.end":
                slot = self.by_stream.pop(frame["stream"])
                tally.last_arrival = now
                if slot.last_at:
                    tally.end_gap_ms.append((now - slot.last_at) * 1000)
                self._check(slot, frame, now)
                if now < deadline:
                    await self.ask(slot)
                else:
                    active -= 1
            elif kind == "error":
                ref = frame.get("ref") or ""
                tally.problem(f"{ref}: error {frame.get('code')}: {frame.get('message')}")
                # An ask refused before its stream started ends that slot; an error
                # about a running stream is followed by its stream.end.
                if self.by_ask.pop(ref, None) is not None:
                    active -= 1

    def _check(self, slot: _Slot, end: dict[str, Any], now: float) -> None:
        tally = self.tally
        text = "".join(slot.parts)
        tally.tokens += slot.tokens
        if slot.first_at:
            tally.stream_s += now - slot.first_at
        if end["seq"] != slot.next_seq - 1:
            tally.problem(f"{slot.ask_id}: stream.end seq {end['seq']}, last {slot.next_seq - 1}")
        elif end["reason"] != "stop":
            tally.problem(f"{slot.ask_id}: reason {end['reason']}: {end.get('message')}")
        elif text != self.job.expected:
            tally.problem(f"{slot.ask_id}: text differs ({len(text)} of {len(self.job.expected)})")
        else:
            tally.answers_ok += 1
            if slot.tokens > slot.first_tokens and now > slot.first_at:
                tally.stream_rate.append((slot.tokens - slot.first_tokens) / (now - slot.first_at))


async def _client(job: Job, ready: Queue[int], start: Event, results: Queue[Tally]) -> None:
    """Connect, report ready, run the slots from ``start`` to the deadline, report the tally."""
    tally = Tally()
    gate = asyncio.Semaphore(job.connect_concurrency)

    async def open_one(i: int) -> ClientConnection:
        async with gate:
            ws = await ws_connect(job.url, mint_token(job.secret, f"bench-s{job.index}-{i}"))
            welcome = _decode(await ws.recv())
            if welcome.get("type") != "welcome":
                raise ConnectionError(f"expected welcome, got {welcome.get('type')}")
            return ws

    opened = await asyncio.gather(
        *(open_one(i) for i in range(job.connections)), return_exceptions=True
    )
    sockets = [ws for ws in opened if isinstance(ws, ClientConnection)]
    tally.connect_failed = len(opened) - len(sockets)
    ready.put(job.index)
    await asyncio.to_thread(start.wait)
    cpu_before = _own_cpu_s()
    deadline = time.monotonic() + job.duration_s
    drivers = [_Driver(ws, job, f"{job.index}-{i}", tally) for i, ws in enumerate(sockets)]
    outcomes = await asyncio.gather(*(d.run(deadline) for d in drivers), return_exceptions=True)
    tally.cpu_s = _own_cpu_s() - cpu_before
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            tally.problem(f"connection failed: {type(outcome).__name__}: {outcome}")
    results.put(tally)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _client_main(job: Job, ready: Queue[int], start: Event, results: Queue[Tally]) -> None:
    """Entry point of a client process."""
    raise_nofile_limit()
    asyncio.run(_client(job, ready, start, results))


# -- orchestration --------------------------------------------------------------


@dataclass
class Run:
    """The merged figures of one load run."""

    label: str
    streams: int
    window_s: float
    steady_s: float
    server_cpu_s: float
    loop_cpu_s: float
    tally: Tally

    @property
    def tokens_per_s(self) -> float:
        """Tokens delivered to clients per second of the run."""
        return self.tally.tokens / self.window_s if self.window_s > 0 else 0.0

    @property
    def steady_tokens_per_s(self) -> float:
        """Tokens that arrived per second until the deadline: the drain after it, while
        the slots' last answers end one by one and none starts, left out."""
        return self.tally.steady_tokens / self.steady_s if self.steady_s > 0 else 0.0

    @property
    def generating(self) -> float:
        """Streams past their first delta, on average over the run."""
        return self.tally.stream_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def server_cpu_pct(self) -> float:
        """Server CPU time over the run's wall time, in percent of one core."""
        return 100 * self.server_cpu_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def loop_cpu_pct(self) -> float:
        """The server's event-loop thread: CPU time over wall time, in percent."""
        return 100 * self.loop_cpu_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def client_cpu_pct(self) -> float:
        """All client processes' CPU time over the run's wall time, in percent of one core."""
        return 100 * self.tally.cpu_s / self.window_s if self.window_s > 0 else 0.0


def _merge(tallies: list[Tally]) -> Tally:
    merged = Tally()
    for t in tallies:
        merged.answers_ok += t.answers_ok
        merged.answers_bad += t.answers_bad
        merged.problems += t.problems[: 5 - len(merged.problems)]
        merged.tokens += t.tokens
        merged.steady_tokens += t.steady_tokens
        merged.deltas += t.deltas
        merged.lateness_ms += t.lateness_ms
        merged.first_delta_ms += t.first_delta_ms
        merged.end_gap_ms += t.end_gap_ms
        merged.stream_rate += t.stream_rate
        merged.stream_s += t.stream_s
        merged.connect_failed += t.connect_failed
        merged.last_arrival = max(merged.last_arrival, t.last_arrival)
        merged.cpu_s += t.cpu_s
    return merged


def run_load(
    label: str,
    server: ServerProcess,
    secret: str,
    *,
    connections: int,
    streams_per_connection: int,
    procs: int,
    duration_s: float,
    pace_s: float,
    expected: str,
) -> Run:
    """Connect from ``procs`` processes, start every slot at once, merge what they saw."""
    ctx = multiprocessing.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = max(min(procs, connections), 1)
    share, extra = divmod(connections, procs)
    jobs = [
        Job(
            index=i,
            url=server.ws_url(),
            secret=secret,
            connections=share + (1 if i < extra else 0),
            streams_per_connection=streams_per_connection,
            duration_s=duration_s,
            pace_s=pace_s,
            expected=expected,
        )
        for i in range(procs)
    ]
    workers = [ctx.Process(target=_client_main, args=(job, ready, start, results)) for job in jobs]
    for worker in workers:
        worker.start()
    try:
        collect(ready, len(workers), workers, timeout_s=300)
        cpu_before, loop_before = server.cpu_s(), server.loop_cpu_s()
        began = time.monotonic()
        start.set()
        tallies: list[Tally] = collect(results, len(workers), workers, duration_s + 300)
        server_cpu_s = server.cpu_s() - cpu_before
        loop_cpu_s = server.loop_cpu_s() - loop_before
    finally:
        start.set()
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.terminate()
                worker.join()
    tally = _merge(tallies)
    window_s = tally.last_arrival - began
    streams = connections * streams_per_connection
    return Run(label, streams, window_s, duration_s, server_cpu_s, loop_cpu_s, tally)


async def reference_answer(server: ServerProcess, secret: str) -> str:
    """The offline tutor's answer to :data:`QUESTION`, asked once."""
    async with await TutorClient.connect(server.ws_url(), mint_token(secret, "bench-ref")) as c:
        answer = await c.answer(await c.ask(QUESTION), timeout_s=120)
    if answer.reason != "stop":
        raise RuntimeError(f"reference answer ended with {answer.reason}: {answer.errors}")
    return answer.text


# -- report -------------------------------------------------------------------------


def report(paced: list[Run], unpaced: Run, pace_ms: float, expected_tokens: int) -> str:
    """The three tables and the verdict lines."""
    per_stream = 1000 / pace_ms
    delivery = []
    for run in paced:
        t = run.tally
        late, first = summarize(t.lateness_ms), summarize(t.first_delta_ms)
        delivery.append(
            [
                run.label,
                fmt(run.streams),
                fmt(run.generating, 0),
                fmt(t.answers_ok),
                fmt(t.answers_bad),
                fmt(run.tokens_per_s, 0),
                fmt(summarize(t.stream_rate)["p50"]),
                fmt(late["p50"]),
                fmt(late["p99"]),
                fmt(late["max"]),
                fmt(first["p50"]),
                fmt(first["p99"]),
            ]
        )
    resources = [
        [
            run.label,
            fmt(run.window_s),
            fmt(run.server_cpu_s),
            fmt(run.server_cpu_pct, 0),
            fmt(run.loop_cpu_pct, 0),
            fmt(run.client_cpu_pct, 0),
            fmt(run.tally.deltas / run.window_s if run.window_s else 0.0, 0),
        ]
        for run in [*paced, unpaced]
    ]
    u = unpaced.tally
    maximum = [
        [
            unpaced.label,
            fmt(unpaced.streams),
            fmt(u.answers_ok),
            fmt(u.answers_bad),
            fmt(unpaced.tokens_per_s, 0),
            fmt(u.answers_ok / unpaced.window_s if unpaced.window_s else 0.0),
            fmt(unpaced.server_cpu_pct, 0),
            fmt(unpaced.client_cpu_pct, 0),
        ]
    ]
    lines = [
        table(
            [
                "run",
                "streams",
                "generating",
                "answers ok",
                "bad",
                "tokens/s",
                "tok/s/stream p50",
                "late p50 ms",
                "late p99 ms",
                "late max ms",
                "1st delta p50 ms",
                "1st delta p99 ms",
            ],
            delivery,
            title=(
                f"Paced answers: offline tutor at {pace_ms:g} ms per token "
                f"({per_stream:g} tokens/s per stream), {expected_tokens} tokens per answer"
            ),
        ),
        "",
        table(
            [
                "run",
                "wall s",
                "server CPU s",
                "server CPU %",
                "loop thread %",
                "clients CPU %",
                "deltas/s",
            ],
            resources,
            title=f"CPU (percent of one core; the machine has {multiprocessing.cpu_count()} cores)",
        ),
        "",
        table(
            [
                "run",
                "streams",
                "answers ok",
                "bad",
                "tokens/s",
                "answers/s",
                "server CPU %",
                "clients CPU %",
            ],
            maximum,
            title="Unpaced maximum (pace 0, each slot asks again at once)",
        ),
        "",
    ]
    base, load = paced[0], paced[-1]
    offered = load.streams * per_stream
    lines.append(
        f"load vs offered: {load.tokens_per_s:,.0f} of {offered:,.0f} tokens/s "
        f"({load.tokens_per_s / offered:.2f}x); per-stream rate p50 "
        f"{summarize(load.tally.stream_rate)['p50']:.1f} of {per_stream:g} tokens/s"
    )
    lines.append(
        f"until the deadline, while every slot asks again (the drain after it left out): "
        f"{load.steady_tokens_per_s:,.0f} tokens/s ({load.steady_tokens_per_s / offered:.2f}x)"
    )
    base_p99 = summarize(base.tally.lateness_ms)["p99"]
    load_p99 = summarize(load.tally.lateness_ms)["p99"]
    lines.append(
        f"lateness p99 under load vs one stream alone: {load_p99:.1f} ms vs {base_p99:.1f} ms"
    )
    gap = summarize(load.tally.end_gap_ms)
    lines.append(
        f"stream.end after the last delta under load: p50 {gap['p50']:.1f} ms, "
        f"p99 {gap['p99']:.1f} ms (one stream alone: p50 "
        f"{summarize(base.tally.end_gap_ms)['p50']:.1f} ms)"
    )
    for run in [*paced, unpaced]:
        t = run.tally
        lines.append(
            f"{run.label}: {t.tokens:,} tokens delivered, {t.answers_ok * expected_tokens:,} "
            f"expected from {t.answers_ok:,} complete answers"
        )
    complete = all(r.tally.answers_bad == 0 and r.tally.connect_failed == 0 for r in paced)
    complete = complete and u.answers_bad == 0 and u.connect_failed == 0
    lines.append(f"every answer complete and in order: {'yes' if complete else 'NO'}")
    for run in [*paced, unpaced]:
        for problem in run.tally.problems:
            lines.append(f"  {run.label}: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the paced and unpaced parts, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000, help="concurrent paced streams")
    parser.add_argument("--connections", type=int, default=500, help="for the paced streams")
    parser.add_argument("--pace-ms", type=float, default=20.0, help="offline tutor pace")
    parser.add_argument("--duration-s", type=float, default=20.0, help="paced load: keep asking")
    parser.add_argument("--baseline-s", type=float, default=5.0, help="one stream alone")
    parser.add_argument("--unpaced-streams", type=int, default=200)
    parser.add_argument("--unpaced-connections", type=int, default=100)
    parser.add_argument("--unpaced-duration-s", type=float, default=10.0)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on the last CPU, clients on the others (clients on a machine of their own)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server environment, e.g. LIVETUTOR_FLUSH_MS=50 (repeatable)",
    )
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.server_env):
        parser.error("--server-env takes NAME=VALUE")
    if args.streams % args.connections or args.unpaced_streams % args.unpaced_connections:
        parser.error("streams must be a multiple of connections")
    raise_nofile_limit()
    print(machine())
    per_conn = args.streams // args.connections
    pace_s = args.pace_ms / 1000
    extra_env = dict(item.split("=", 1) for item in args.server_env)
    with livetutor_server({**server_env(args.pace_ms, per_conn), **extra_env}) as tutor:
        if args.pin:
            print(f"placement: {pin_apart(tutor.server.pid)}")
        expected = asyncio.run(reference_answer(tutor.server, tutor.secret))
        baseline = run_load(
            "1 stream alone",
            tutor.server,
            tutor.secret,
            connections=1,
            streams_per_connection=1,
            procs=1,
            duration_s=args.baseline_s,
            pace_s=pace_s,
            expected=expected,
        )
        load = run_load(
            f"{args.streams} streams",
            tutor.server,
            tutor.secret,
            connections=args.connections,
            streams_per_connection=per_conn,
            procs=args.procs,
            duration_s=args.duration_s,
            pace_s=pace_s,
            expected=expected,
        )
    unpaced_per_conn = args.unpaced_streams // args.unpaced_connections
    with livetutor_server({**server_env(0, unpaced_per_conn), **extra_env}) as tutor:
        if args.pin:
            pin_apart(tutor.server.pid)
        unpaced = run_load(
            f"{args.unpaced_streams} streams unpaced",
            tutor.server,
            tutor.secret,
            connections=args.unpaced_connections,
            streams_per_connection=unpaced_per_conn,
            procs=args.procs,
            duration_s=args.unpaced_duration_s,
            pace_s=0.0,
            expected=expected,
        )
    paced = [baseline, load]
    print(report(paced, unpaced, args.pace_ms, count_tokens(expected)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
