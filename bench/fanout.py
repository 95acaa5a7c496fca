"""Cross-pod fan-out: a delta produced on pod A, received by a client on pod B.

LiveTutor. A :class:`~devtools.cluster.DevCluster` of two pods on one Redis
(URL mode, no Sentinel). The offline tutor is paced (``--pace-ms``, 20 ms:
50 words/s per stream), and ``LIVETUTOR_FLUSH_MS=0`` with ``LIVETUTOR_FLUSH_MAX_MS=0``
(no widening under load) makes every word its
own ``delta``, so S concurrent streams produce S x 1000 / pace frames/s.
Producer connections on pod A ask, each slot in its own session, and ask
again as soon as its answer ends; consumer connections on pod B ``open``
the same sessions once, during a warm-up, so every frame of every later
answer reaches both: A's client by local delivery (which the pod does once
the journal and publish pipeline is written), B's through Redis pub/sub.
The first answers of a run are started evenly over one answer's duration,
so the streams' words do not all fall on the same millisecond, and the
measurement window starts when the last has started.

Both sides run in this process and timestamp every delta on receipt with
one clock. Per (stream, seq):

- ``B-A``: B's receipt minus A's receipt of the same delta. A pod delivers
  to its own connections only once the pipeline that journals and
  publishes the delta has come back from Redis, while Redis forwards the
  publish to pod B as soon as it executes it, so B often has a delta
  before A and this figure is small or negative;
- ``prod->B``: B's receipt minus the word's production time. The offline
  tutor produces word k of a stream at ``start + k x pace`` (a fixed
  schedule); ``start`` is estimated from A's receipts as the smallest
  ``t_A(k) - k x pace`` of the stream, so this is an underestimate by the
  fastest local delivery of that stream (a few tenths of a ms);
- ``prod->A``: the same for A's receipt, which shows how much of the
  delay arises on the producing pod rather than on the way to B.

Loss: every (stream, seq) seen on A must arrive on B exactly once; missing
and duplicated deltas are counted over every answer of the run. When some
are missing, the problems say which streams lack which seqs, and any B
connection the server closed before the benchmark did.

Unpaced maximum: a second cluster with pace 0 (``LIVETUTOR_OUTBOUND_QUEUE_FRAMES``
raised, since one unpaced answer queues its 128 deltas at once),
``--unpaced-streams`` slots asking back to back; the figure is deltas/s
received by B.

Reference, in the same run: python-socketio with its ``AsyncRedisManager``,
two uvicorn processes of :mod:`bench._socketio_app` on their own Redis. A
``socketio.AsyncClient`` on server A joins a room and emits ``delta``
events carrying the same fields; server A ``emit``s each to the room, whose
members are the emitting client itself (A) and a client on server B. The
paced runs emit at the same rates; the unpaced one keeps
``--socketio-window`` frames in flight (sent, not yet received by B). For
socket.io ``prod->B`` is measured exactly, from the emitting client's send.
Note that python-socketio delivers to its local room members *before* it
publishes to Redis, while LiveTutor delivers locally *after* the Redis
write, so ``B-A`` includes the Redis publish for socket.io but not for
LiveTutor; ``prod->B`` is the like-for-like figure (for socket.io it also
includes the emitting client's hop to server A). The latency targets are
checked on both ``B-A`` and ``prod->B``.

CPU: every server process, Redis, this process (all the clients) and the
whole machine over each window, in percent of one core, so it is visible
when the load generator or other work on the machine limits a figure.

Run: ``python -m bench.fanout [--rates 2000,5000] [--duration-s 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench._common import fmt, machine, percentile, raise_nofile_limit, run_server, table
from bench._pods import QUESTION, CpuMeter, CpuUsage, connect, offline_env
from devtools.cluster import DevCluster, RedisNode

# The p99 latency targets by offered frames/s (checked on B-A and on prod->B), and the
# unpaced throughput ratio target.
P99_TARGET_MS = {2000: 5.0, 5000: 20.0}
THROUGHPUT_TARGET = 4.0
WORDS_PER_ANSWER = 128
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

Key = tuple[str, int]


@dataclass
class Phase:
    """What one measured run saw."""

    system: str
    label: str
    offered: float  # frames/s asked for; 0 when unpaced
    window_s: float
    frames_b: int  # deltas received by B inside the window
    ba_ms: list[float]
    prod_ms: list[float]  # produced -> received on B
    prod_a_ms: list[float]  # produced -> received on A
    frames_a: int  # deltas received by A inside the window
    seen_a: int  # every delta A received in the run
    missing: int
    duplicated: int
    cpu: CpuUsage
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Deltas per second received by B in the window."""
        return self.frames_b / self.window_s if self.window_s > 0 else 0.0


class _Tally:
    """Receipt times of deltas on one side, by (stream, seq)."""

    def __init__(self) -> None:
        self.times: dict[Key, float] = {}
        self.duplicated = 0

    def add(self, key: Key, now: float) -> bool:
        """Record a receipt; True if it is the first of ``key``."""
        if key in self.times:
            self.duplicated += 1
            return False
        self.times[key] = now
        return True


def _latencies(
    a: _Tally, b: _Tally, t0: float, t1: float, pace_s: float
) -> tuple[list[float], list[float], list[float]]:
    """B-A, prod->B and prod->A in ms for the deltas A received inside [t0, t1]."""
    anchors: dict[str, float] = {}
    if pace_s:
        for (stream, seq), t in a.times.items():
            start = t - seq * pace_s
            if start < anchors.get(stream, math.inf):
                anchors[stream] = start
    ba, prod_b, prod_a = [], [], []
    for key, t_a in a.times.items():
        t_b = b.times.get(key)
        if t_b is None or not t0 <= t_a <= t1:
            continue
        ba.append((t_b - t_a) * 1000)
        if pace_s:
            produced = anchors[key[0]] + key[1] * pace_s
            prod_b.append((t_b - produced) * 1000)
            prod_a.append((t_a - produced) * 1000)
    return ba, prod_b, prod_a


def _count_in(times: Iterable[float], t0: float, t1: float) -> int:
    return sum(1 for t in times if t0 <= t <= t1)


async def _drain(
    done: Callable[[], bool], progress: asyncio.Event, idle_s: float, timeout_s: float
) -> None:
    """Wait until ``done()``, or until nothing arrived for ``idle_s``; at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        progress.clear()
        try:
            async with asyncio.timeout(idle_s):
                await progress.wait()
        except TimeoutError:
            return


# -- LiveTutor ------------------------------------------------------------------


@dataclass
class _Slot:
    """One stream slot: a session asked in on pod A and opened on pod B."""

    index: int
    conn: int
    session: str = ""
    asks: int = 0
    active: bool = False  # asks again when its answer ends
    opened: bool = False


class TutorFanout:
    """Producer connections on pod A, consumer connections on pod B, and their readers."""

    def __init__(self, a: list[ClientConnection], b: list[ClientConnection], slots: int) -> None:
        self.a, self.b = a, b
        self.slots = [_Slot(i, i % len(a)) for i in range(slots)]
        self.tally_a, self.tally_b = _Tally(), _Tally()
        # Deltas received on both sides. B's count alone would not do: B may still be
        # receiving the previous run's deltas when a run starts.
        self.matched = 0
        self.problems: list[str] = []
        self._by_ask: dict[str, _Slot] = {}
        self._by_stream: dict[str, _Slot] = {}
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._opened = 0
        self._all_opened = asyncio.Event()
        self._progress = asyncio.Event()
        self._readers: set[asyncio.Task[None]] = set()
        self._closing = False

    def start(self) -> None:
        """Start one reader task per connection."""
        for ws in self.a:
            self._spawn(self._read_a(ws))
        for ws in self.b:
            self._spawn(self._read_b(ws))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._readers.add(task)
        task.add_done_callback(self._reader_done)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        self._readers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._problem(f"reader failed: {task.exception()!r}")

    async def close(self) -> None:
        """Close every connection and wait for the readers."""
        self._closing = True
        readers = list(self._readers)
        await asyncio.gather(*(ws.close() for ws in (*self.a, *self.b)), return_exceptions=True)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    def reset(self) -> None:
        """Forget what was received (between runs)."""
        self.tally_a, self.tally_b = _Tally(), _Tally()
        self.matched = 0
        self.problems = []

    def _problem(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(text)

    async def ask(self, slot: _Slot) -> None:
        """Ask :data:`QUESTION` in the slot's session (a new one on its first ask)."""
        slot.asks += 1
        ask_id = f"s{slot.index}-{slot.asks}"
        frame: dict[str, Any] = {"type": "ask", "id": ask_id, "course": "demo", "text": QUESTION}
        if slot.session:
            frame["session"] = slot.session
        self._by_ask[ask_id] = slot
        self._outstanding += 1
        self._idle.clear()
        await self.a[slot.conn].send(_encode(frame).decode())

    def _answered(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()

    async def _read_a(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                now = time.monotonic()
                frame = _decode(raw)
                kind = frame["type"]
                if kind == "delta":
                    key = (frame["stream"], frame["seq"])
                    if self.tally_a.add(key, now) and key in self.tally_b.times:
                        self.matched += 1
                elif kind == "stream.start":
                    slot = self._by_ask.pop(frame["ask"])
                    slot.session = frame["session"]
                    self._by_stream[frame["stream"]] = slot
                    if not slot.opened:
                        slot.opened = True
                        await self._open(slot)
                elif kind == "stream.end":
                    slot = self._by_stream.pop(frame["stream"])
                    if frame["reason"] != "stop":
                        self._problem(f"answer ended {frame['reason']}: {frame.get('message')}")
                    self._answered()
                    if slot.active:
                        await self.ask(slot)
                elif kind == "error":
                    self._problem(f"error {frame.get('code')}: {frame.get('message')}")
                    errored = self._by_ask.pop(frame.get("ref") or "", None)
                    if errored is not None:
                        errored.active = False
                        self._answered()

    async def _open(self, slot: _Slot) -> None:
        frame = {"type": "open", "id": f"o{slot.index}", "session": slot.session}
        await self.b[slot.conn].send(_encode(frame).decode())

    async def _read_b(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                now = time.monotonic()
                frame = _decode(raw)
                kind = frame["type"]
                if kind == "delta":
                    key = (frame["stream"], frame["seq"])
                    if self.tally_b.add(key, now) and key in self.tally_a.times:
                        self.matched += 1
                    self._progress.set()
                elif kind == "session":
                    self._opened += 1
                    if self._opened == len(self.slots):
                        self._all_opened.set()
                elif kind == "error":
                    self._problem(f"B: error {frame.get('code')}: {frame.get('message')}")
        if not self._closing:
            # Closed by the server (a slow consumer, a drain): B misses what follows.
            self._problem(f"B: the server closed a connection: {ws.close_code} {ws.close_reason}")

    async def warm_up(self, timeout_s: float) -> None:
        """Every slot asks once and B opens its session; returns when all answers ended."""
        async with asyncio.timeout(timeout_s):
            for slot in self.slots:
                await self.ask(slot)
            await self._all_opened.wait()
            await self._idle.wait()

    async def run(
        self, slots: int, ramp_s: float, duration_s: float, meter: CpuMeter, drain_s: float
    ) -> tuple[float, float, CpuUsage]:
        """Start ``slots`` slots evenly over ``ramp_s``, measure ``duration_s``, drain."""
        active = self.slots[:slots]
        began = time.monotonic()
        for i, slot in enumerate(active):
            await asyncio.sleep(max(began + i * ramp_s / len(active) - time.monotonic(), 0))
            slot.active = True
            await self.ask(slot)
        t0 = max(began + ramp_s, time.monotonic())
        await asyncio.sleep(t0 - time.monotonic())
        meter.start()
        await asyncio.sleep(duration_s)
        cpu = meter.stop()
        t1 = time.monotonic()
        for slot in active:
            slot.active = False
        async with asyncio.timeout(drain_s):
            await self._idle.wait()
        # B may still be receiving the last deltas (and, early on, the previous run's).
        await _drain(lambda: self.matched >= len(self.tally_a.times), self._progress, 2.0, 60.0)
        return t0, t1, cpu


def _tutor_phase(
    fan: TutorFanout, label: str, offered: float, t0: float, t1: float, pace_s: float, cpu: CpuUsage
) -> Phase:
    a, b = fan.tally_a, fan.tally_b
    ba, prod, prod_a = _latencies(a, b, t0, t1, pace_s)
    missing = sum(1 for key in a.times if key not in b.times)
    if missing:
        fan.problems.append(_missing_report(a, b))
    return Phase(
        system="LiveTutor",
        label=label,
        offered=offered,
        window_s=t1 - t0,
        frames_a=_count_in(a.times.values(), t0, t1),
        frames_b=_count_in(b.times.values(), t0, t1),
        ba_ms=ba,
        prod_ms=prod,
        prod_a_ms=prod_a,
        seen_a=len(a.times),
        missing=missing,
        duplicated=a.duplicated + b.duplicated,
        cpu=cpu,
        problems=list(fan.problems),
    )


def _missing_report(a: _Tally, b: _Tally) -> str:
    """Which streams lack deltas on B, and where in each answer the gap sits."""
    last: dict[str, int] = {}
    gaps: dict[str, list[int]] = {}
    for stream, seq in a.times:
        last[stream] = max(last.get(stream, 0), seq)
        if (stream, seq) not in b.times:
            gaps.setdefault(stream, []).append(seq)
    shown = [
        f"{stream[:8]} seqs {min(seqs)}-{max(seqs)} ({len(seqs)}) of {last[stream]}"
        for stream, seqs in list(gaps.items())[:3]
    ]
    return f"B lacks deltas of {len(gaps)} streams: " + "; ".join(shown)


async def _tutor_cluster(
    env: dict[str, str], connections: int, slots: int, keep_dir: Path
) -> tuple[DevCluster, TutorFanout, CpuMeter]:
    cluster = DevCluster(pods=2, sentinels=0, replica=False, pod_env=env, base_dir=keep_dir)
    await cluster.start()
    try:
        pod_a, pod_b = cluster.pods
        token = cluster.token("bench-fanout")
        a = [await connect(pod_a.ws_url, token) for _ in range(connections)]
        b = [await connect(pod_b.ws_url, token) for _ in range(connections)]
    except BaseException:
        await cluster.stop()
        raise
    fan = TutorFanout(a, b, slots)
    fan.start()
    pids = {"pod A": pod_a.pid, "pod B": pod_b.pid, "redis": cluster.redis[0].pid}
    return cluster, fan, CpuMeter(pids)


def _run_dir(args: argparse.Namespace, run: str) -> tuple[Path, bool]:
    """Where a run's processes keep their files and logs, and whether it is temporary:
    ``--keep-dir``, or a temporary folder that :func:`_tidy` removes unless B missed a delta."""
    if args.keep_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"livetutor-fanout-{run}-")), True
    path = Path(args.keep_dir) / run
    path.mkdir(parents=True, exist_ok=True)
    return path, False


def _tidy(path: Path, temporary: bool, phases: list[Phase]) -> None:
    """Remove a temporary run folder, or keep it, and say where, when a delta went astray."""
    if not temporary:
        return
    if any(ph.missing or ph.duplicated for ph in phases):
        phases[-1].problems.append(f"the pods' logs of this run are kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


async def measure_tutor_paced(args: argparse.Namespace) -> list[Phase]:
    """The paced runs, one per rate, on one cluster."""
    pace_s = args.pace_ms / 1000
    per_stream = 1 / pace_s
    streams = [max(round(rate / per_stream), 1) for rate in args.rates]
    env = offline_env(args.pace_ms, LIVETUTOR_FLUSH_MS="0", LIVETUTOR_FLUSH_MAX_MS="0")
    answer_s = WORDS_PER_ANSWER * pace_s
    run_dir, temporary = _run_dir(args, "paced")
    cluster, fan, meter = await _tutor_cluster(env, args.connections, max(streams), run_dir)
    phases: list[Phase] = []
    try:
        await fan.warm_up(timeout_s=answer_s * 4 + 30)
        for rate, n in zip(args.rates, streams, strict=True):
            fan.reset()
            t0, t1, cpu = await fan.run(n, answer_s, args.duration_s, meter, answer_s * 4 + 30)
            label = f"{n} streams x {per_stream:.0f}/s"
            phases.append(_tutor_phase(fan, label, rate, t0, t1, pace_s, cpu))
    finally:
        await fan.close()
        await cluster.stop()
    _tidy(run_dir, temporary, phases)
    return phases


async def measure_tutor_unpaced(args: argparse.Namespace) -> Phase:
    """Pace 0: as many deltas as two pods deliver to B."""
    env = offline_env(
        0,
        LIVETUTOR_FLUSH_MS="0",
        LIVETUTOR_FLUSH_MAX_MS="0",
        LIVETUTOR_OUTBOUND_QUEUE_FRAMES="16384",
    )
    run_dir, temporary = _run_dir(args, "unpaced")
    cluster, fan, meter = await _tutor_cluster(env, args.connections, args.unpaced_streams, run_dir)
    try:
        await fan.warm_up(timeout_s=60)
        fan.reset()
        t0, t1, cpu = await fan.run(args.unpaced_streams, 1.0, args.duration_s, meter, 60)
    finally:
        await fan.close()
        await cluster.stop()
    phase = _tutor_phase(fan, f"{args.unpaced_streams} streams unpaced", 0, t0, t1, 0, cpu)
    _tidy(run_dir, temporary, [phase])
    return phase


# -- python-socketio ------------------------------------------------------------


class SocketioFanout:
    """A producer on server A (also a room member) and a consumer on server B, for one run.

    Each run gets fresh clients: an overloaded run can lose its connections
    (python-socketio closes a connection whose pong is stuck behind its queue),
    and the next run must not inherit that.
    """

    ROOM = "bench"
    STREAM = "0123456789abcdef0123456789abcdef"  # as long as a LiveTutor stream id

    def __init__(self, client_class: Any) -> None:
        self.producer = client_class(reconnection=False)
        self.consumer = client_class(reconnection=False)
        self.sent: dict[int, float] = {}
        self.tally_a, self.tally_b = _Tally(), _Tally()
        self.problems: list[str] = []
        self._progress = asyncio.Event()
        self.producer.on("delta", self._on_a)
        self.consumer.on("delta", self._on_b)
        self.producer.on("disconnect", lambda *why: self._lost("A", why))
        self.consumer.on("disconnect", lambda *why: self._lost("B", why))
        self._closing = False

    def _on_a(self, data: dict[str, Any]) -> None:
        self.tally_a.add((data["stream"], data["seq"]), time.monotonic())

    def _on_b(self, data: dict[str, Any]) -> None:
        self.tally_b.add((data["stream"], data["seq"]), time.monotonic())
        self._progress.set()

    def _lost(self, side: str, why: tuple[Any, ...]) -> None:
        if not self._closing:
            self.problems.append(f"socket.io client on {side} disconnected: {why}")
            self._progress.set()

    async def connect(self, url_a: str, url_b: str) -> None:
        """Connect both clients and join them to the room."""
        for client, url in ((self.producer, url_a), (self.consumer, url_b)):
            await client.connect(url, transports=["websocket"], wait_timeout=10)
            if not await client.call("join", self.ROOM, timeout=10):
                raise RuntimeError("socket.io server refused to join the room")

    async def close(self) -> None:
        """Disconnect both clients."""
        self._closing = True
        for client in (self.producer, self.consumer):
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def _emit(self) -> bool:
        seq = len(self.sent) + 1
        self.sent[seq] = time.monotonic()
        data = {"room": self.ROOM, "type": "delta", "stream": self.STREAM, "seq": seq}
        data["text"] = "word "
        try:
            await self.producer.emit("delta", data)
        except Exception as exc:
            del self.sent[seq]
            self.problems.append(f"emit failed: {exc!r}")
            return False
        return True

    async def run(
        self, rate: float, window: int, settle_s: float, duration_s: float, meter: CpuMeter
    ) -> tuple[float, float, CpuUsage]:
        """Emit at ``rate`` per second (or with ``window`` in flight when 0), then drain."""
        began = time.monotonic()
        t0, end = began + settle_s, began + settle_s + duration_s
        measuring = False
        while (now := time.monotonic()) < end and not self.problems:
            if not measuring and now >= t0:
                meter.start()
                measuring = True
            if rate:
                due = int((now - began) * rate)
                while len(self.sent) < due and await self._emit():
                    pass
                await asyncio.sleep(0.001)
            else:
                while len(self.sent) - len(self.tally_b.times) < window and await self._emit():
                    pass
                self._progress.clear()
                # A lost frame must not stall the loop for good.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._progress.wait()
        if not measuring:
            meter.start()
        cpu = meter.stop()
        t1 = time.monotonic()
        # Overloaded, socket.io queues what it cannot send yet: wait while it still arrives.
        sent = len(self.sent)
        await _drain(lambda: len(self.tally_b.times) >= sent, self._progress, 2.0, 60.0)
        return t0, t1, cpu


def _socketio_phase(
    fan: SocketioFanout, label: str, offered: float, t0: float, t1: float, cpu: CpuUsage
) -> Phase:
    a, b = fan.tally_a, fan.tally_b
    ba, _, _ = _latencies(a, b, t0, t1, 0)
    prod, prod_a = [], []
    for seq, sent in fan.sent.items():
        key = (fan.STREAM, seq)
        if t0 <= sent <= t1 and key in b.times and key in a.times:
            prod.append((b.times[key] - sent) * 1000)
            prod_a.append((a.times[key] - sent) * 1000)
    return Phase(
        system="socket.io",
        label=label,
        offered=offered,
        window_s=t1 - t0,
        frames_a=_count_in(a.times.values(), t0, t1),
        frames_b=_count_in(b.times.values(), t0, t1),
        ba_ms=ba,
        prod_ms=prod,
        prod_a_ms=prod_a,
        seen_a=len(a.times),
        missing=sum(1 for seq in fan.sent if (fan.STREAM, seq) not in b.times),
        duplicated=a.duplicated + b.duplicated,
        cpu=cpu,
        problems=list(fan.problems),
    )


async def measure_socketio(args: argparse.Namespace) -> list[Phase]:
    """The same rates and the unpaced maximum through python-socketio's Redis manager."""
    import socketio  # a benchmark-only dependency: pip install python-socketio aiohttp

    async def one_run(rate: float, window: int, settle_s: float, label: str) -> Phase:
        fan = SocketioFanout(socketio.AsyncClient)
        try:
            await fan.connect(url_a, url_b)
            t0, t1, cpu = await fan.run(rate, window, settle_s, args.duration_s, meter)
        finally:
            await fan.close()
        return _socketio_phase(fan, label, rate, t0, t1, cpu)

    redis = RedisNode(name="socketio-redis")
    await redis.start()
    phases = []
    try:
        argv = [sys.executable, "-m", "bench._socketio_app", "--port", "0"]
        argv += ["--redis-url", redis.url]
        with run_server("socketio-a", argv) as server_a, run_server("socketio-b", argv) as server_b:
            url_a = f"http://{server_a.host}:{server_a.port}"
            url_b = f"http://{server_b.host}:{server_b.port}"
            pids = {"server A": server_a.pid, "server B": server_b.pid, "redis": redis.pid}
            meter = CpuMeter(pids)
            # Warm-up: both servers' Redis subscribers are up and code paths are hot.
            warm = SocketioFanout(socketio.AsyncClient)
            try:
                await warm.connect(url_a, url_b)
                await warm.run(500, 0, 0, 1.0, meter)
            finally:
                await warm.close()
            for rate in args.rates:
                phases.append(await one_run(rate, 0, 1.0, "1 emitter"))
            window = args.socketio_window
            phases.append(await one_run(0, window, 1.0, f"unpaced, {window} in flight"))
    finally:
        await redis.stop()
    return phases


# -- report ---------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _ms(values: list[float], q: float) -> str:
    return fmt(percentile(values, q), 2)


def report(tutor: list[Phase], reference: list[Phase], unpaced: Phase) -> str:
    """The tables and the verdicts."""
    headers = ["system", "run", "offered/s", "A frames/s", "B frames/s"]
    headers += ["B-A p50", "B-A p99", "B-A max", "prod->B p50", "prod->B p99", "prod->B max"]
    headers += ["prod->A p99"]
    headers += ["missing", "dup"]
    phases = [*tutor, unpaced, *reference]
    rows = []
    for ph in phases:
        ba, prod = ph.ba_ms, ph.prod_ms
        rows.append(
            [
                ph.system,
                ph.label,
                fmt(int(ph.offered)) if ph.offered else "max",
                fmt(ph.frames_a / ph.window_s, 0),
                fmt(ph.rate, 0),
                *(_ms(ba, q) for q in (50, 99, 100)),
                *(_ms(prod, q) for q in (50, 99, 100)),
                _ms(ph.prod_a_ms, 99),
                fmt(ph.missing),
                fmt(ph.duplicated),
            ]
        )
    title = "Cross-pod fan-out: deltas produced via server A, received on A and on B (ms)"
    lines = [table(headers, rows, title=title)]
    cpu_rows = []
    for ph in phases:
        cpu_rows.append(
            [
                f"{ph.system} {fmt(int(ph.offered)) if ph.offered else 'max'}",
                *(fmt(p, 0) for p in ph.cpu.processes.values()),
                fmt(ph.cpu.client, 0),
                fmt(ph.cpu.machine, 0),
                fmt(ph.cpu.others, 0),
            ]
        )
    lines += [
        "",
        table(
            ["run", "server A", "server B", "redis", "client", "machine", "other work"],
            cpu_rows,
            title="CPU over each window, % of one core (the machine has 2 cores: 200 %)",
        ),
        "",
    ]
    for ph in tutor:
        target = P99_TARGET_MS.get(int(ph.offered))
        if target is None:
            continue
        p99, ba99 = percentile(ph.prod_ms, 99), percentile(ph.ba_ms, 99)
        lines.append(
            f"p99 at {fmt(int(ph.offered))}/s under {target:.0f} ms: "
            f"prod->B {_met(p99 < target)} ({p99:.2f} ms), B-A {_met(ba99 < target)} "
            f"({ba99:.2f} ms); {ph.rate:,.0f} of {ph.offered:,.0f} frames/s delivered"
        )
    ours = (*tutor, unpaced)
    missing = sum(ph.missing for ph in ours)
    duplicated = sum(ph.duplicated for ph in ours)
    lines.append(
        f"no loss: {_met(missing + duplicated == 0)} ({sum(ph.seen_a for ph in ours):,} deltas "
        f"seen on A; {missing} missing on B, {duplicated} duplicated)"
    )
    if reference:
        sio_max = reference[-1].rate
        ratio = unpaced.rate / sio_max if sio_max else math.nan
        lines.append(
            f"unpaced throughput at least {THROUGHPUT_TARGET:.0f}x python-socketio's: "
            f"{_met(ratio >= THROUGHPUT_TARGET)} ({unpaced.rate:,.0f} vs {sio_max:,.0f} "
            f"frames/s at B: {ratio:.2f}x)"
        )
    problems = [p for ph in phases for p in ph.problems]
    if problems:
        lines += ["problems (first few):", *(f"  {p}" for p in problems[:5])]
    return "\n".join(lines)


async def measure(args: argparse.Namespace) -> str:
    """Every run; the report."""
    tutor = await measure_tutor_paced(args)
    unpaced = await measure_tutor_unpaced(args)
    reference = [] if args.no_socketio else await measure_socketio(args)
    return report(tutor, reference, unpaced)


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        type=lambda s: [int(r) for r in s.split(",")],
        default=[2000, 5000],
        help="offered frames/s of the paced runs, comma-separated",
    )
    parser.add_argument("--duration-s", type=float, default=10.0, help="window of each run")
    parser.add_argument("--pace-ms", type=float, default=20.0, help="offline tutor, per word")
    parser.add_argument("--connections", type=int, default=8, help="per side (A and B)")
    parser.add_argument("--unpaced-streams", type=int, default=32)
    parser.add_argument("--socketio-window", type=int, default=200, help="frames in flight")
    parser.add_argument("--no-socketio", action="store_true", help="skip the reference")
    parser.add_argument(
        "--keep-dir", help="keep the pods' and Redis's files and logs here (one folder per run)"
    )
    args = parser.parse_args(argv)
    raise_nofile_limit()
    print(machine())
    text = asyncio.run(measure(args))
    print(
        f"LiveTutor: 2 pods, 1 Redis (URL mode), offline tutor at {args.pace_ms:g} ms per word, "
        f"LIVETUTOR_FLUSH_MS=0 and FLUSH_MAX_MS=0, {args.connections} connections per side; "
        f"python-socketio: 2 uvicorn servers, AsyncRedisManager; {args.duration_s:g} s per run"
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
