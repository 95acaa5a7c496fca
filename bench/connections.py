"""Memory per idle connection: N authenticated WebSockets held open on one server process.

Client processes (``--procs``) each open their share of ``--n`` connections
at a bounded rate (``--concurrency`` handshakes in flight in total), wait
for LiveTutor's ``welcome`` on each, and hold them open. The server's RSS
is read with psutil after a short warm-up (a few connections opened and
closed, so first-use allocations are not counted) and again once every
connection is open and the server has settled; the difference divided by
N is the cost of one connection. The baseline is the bare Starlette app of
:mod:`bench._echo_app` (accepts, then waits in ``receive``) with the same
uvicorn settings and the same N, measured in the same run.

Run: ``python -m bench.connections [--n 15000] [--procs 4]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import msgspec
from websockets.asyncio.client import ClientConnection

from bench._common import (
    ServerProcess,
    collect,
    echo_server,
    fmt,
    livetutor_server,
    machine,
    mint_token,
    raise_nofile_limit,
    table,
    ws_connect,
)

TARGET_N = 15_000
# "40 KB" read strictly, as 40,000 bytes (39.1 KiB).
TARGET_BYTES = 40_000
# Same settings for both servers: no idle close and no heartbeat during the run.
SERVER_ENV = {
    "LIVETUTOR_IDLE_TIMEOUT_S": "3600",
    "LIVETUTOR_HEARTBEAT_S": "3600",
    "LIVETUTOR_HEARTBEAT_TIMEOUT_S": "60",
}
_decode = msgspec.json.Decoder().decode


@dataclass
class Job:
    """What one client process does."""

    index: int
    url: str
    secret: str | None  # None: no token, no welcome (the echo baseline)
    count: int
    concurrency: int


@dataclass
class Outcome:
    """What one client process reports once its connections are open."""

    index: int
    opened: int
    failed: int
    first_error: str


async def _open(job: Job, i: int, gate: asyncio.Semaphore) -> ClientConnection:
    token = mint_token(job.secret, f"bench-c{job.index}-{i}") if job.secret else None
    async with gate:
        ws = await ws_connect(job.url, token, max_queue=4)
        if job.secret:
            frame = _decode(await asyncio.wait_for(ws.recv(), 60))
            if frame.get("type") != "welcome":
                await ws.close()
                raise ConnectionError(f"expected welcome, got {frame.get('type')}")
        return ws


async def _hold(job: Job, results: Queue[Outcome], release: Event) -> None:
    """Open the job's connections, report, hold them until released, close them."""
    gate = asyncio.Semaphore(job.concurrency)
    opened = await asyncio.gather(
        *(_open(job, i, gate) for i in range(job.count)), return_exceptions=True
    )
    sockets = [ws for ws in opened if isinstance(ws, ClientConnection)]
    errors = [exc for exc in opened if isinstance(exc, BaseException)]
    first = f"{type(errors[0]).__name__}: {errors[0]}" if errors else ""
    results.put(Outcome(job.index, len(sockets), len(errors), first))
    await asyncio.to_thread(release.wait)
    closing = asyncio.Semaphore(500)

    async def close(ws: ClientConnection) -> None:
        async with closing:
            with contextlib.suppress(Exception):
                await ws.close()

    await asyncio.gather(*(close(ws) for ws in sockets))


def _client_main(job: Job, results: Queue[Outcome], release: Event) -> None:
    """Entry point of a client process."""
    raise_nofile_limit()
    asyncio.run(_hold(job, results, release))


@dataclass
class Measurement:
    """One server's figures."""

    name: str
    n: int
    opened: int
    failed: int
    first_error: str
    rss_before: int
    rss_after: int
    fds_after: int
    connect_s: float

    @property
    def kb_per_connection(self) -> float:
        """RSS growth per open connection, in KiB."""
        return (self.rss_after - self.rss_before) / 1024 / max(self.opened, 1)


@contextlib.contextmanager
def _clients(
    jobs: list[Job], release: Event, results: Queue[Outcome]
) -> Iterator[Sequence[BaseProcess]]:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_client_main, args=(job, results, release)) for job in jobs]
    for proc in procs:
        proc.start()
    try:
        yield procs
    finally:
        release.set()
        for proc in procs:
            proc.join(60)
            if proc.is_alive():
                proc.terminate()
                proc.join()


def measure(
    name: str, server: ServerProcess, secret: str | None, args: argparse.Namespace
) -> Measurement:
    """Open ``args.n`` connections to ``server`` from client processes and read its RSS."""
    ctx = multiprocessing.get_context("spawn")
    url = server.ws_url()
    # Warm-up: first-use allocations (imports, caches, the store) are not per connection.
    asyncio.run(_warm(Job(-1, url, secret, args.warmup, args.warmup)))
    time.sleep(1.0)
    rss_before = server.rss_bytes()
    per_proc, extra = divmod(args.n, args.procs)
    gate = max(args.concurrency // args.procs, 1)
    jobs = [
        Job(i, url, secret, per_proc + (1 if i < extra else 0), gate) for i in range(args.procs)
    ]
    release = ctx.Event()
    results = ctx.Queue()
    began = time.monotonic()
    with _clients(jobs, release, results) as procs:
        outcomes: list[Outcome] = collect(results, len(jobs), procs, args.timeout_s)
        connect_s = time.monotonic() - began
        time.sleep(args.settle_s)
        rss_after = server.rss_bytes()
        fds_after = server.ps.num_fds()
    errors = [o.first_error for o in outcomes if o.first_error]
    return Measurement(
        name=name,
        n=args.n,
        opened=sum(o.opened for o in outcomes),
        failed=sum(o.failed for o in outcomes),
        first_error=errors[0] if errors else "",
        rss_before=rss_before,
        rss_after=rss_after,
        fds_after=fds_after,
        connect_s=connect_s,
    )


async def _warm(job: Job) -> None:
    gate = asyncio.Semaphore(job.concurrency)
    sockets = await asyncio.gather(*(_open(job, i, gate) for i in range(job.count)))
    await asyncio.gather(*(ws.close() for ws in sockets))


def report(results: list[Measurement]) -> str:
    """The results table and the verdict."""
    rows = [
        [
            m.name,
            fmt(m.opened),
            fmt(m.failed),
            fmt(m.connect_s),
            fmt(m.rss_before / 2**20),
            fmt(m.rss_after / 2**20),
            fmt(m.fds_after),
            fmt(m.kb_per_connection),
        ]
        for m in results
    ]
    by_name = {m.name: m for m in results}
    lines = [
        table(
            [
                "server",
                "open",
                "failed",
                "connect s",
                "RSS before MiB",
                "RSS after MiB",
                "fds",
                "KiB/conn",
            ],
            rows,
            title="Idle authenticated WebSocket connections held on one server process",
        )
    ]
    live, echo = by_name.get("LiveTutor"), by_name.get("bare echo")
    if live and echo:
        lines.append(
            f"LiveTutor / echo: {live.kb_per_connection / echo.kb_per_connection:.2f}x KiB per "
            "connection"
        )
    for m in results:
        if m.first_error:
            lines.append(f"{m.name}: first connection error: {m.first_error}")
    if live:
        per_conn = live.kb_per_connection * 1024
        met = live.opened >= TARGET_N and live.failed == 0 and per_conn < TARGET_BYTES
        verdict = "met" if met else "NOT met"
        lines.append(
            f"target: {TARGET_N:,} connections under {TARGET_BYTES:,} bytes each: {verdict} "
            f"({live.opened:,} open, {per_conn:,.0f} bytes = {live.kb_per_connection:.1f} KiB each)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure both servers, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=TARGET_N, help="connections per server")
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    parser.add_argument(
        "--concurrency", type=int, default=200, help="handshakes in flight, all processes"
    )
    parser.add_argument("--warmup", type=int, default=20, help="connections before the baseline")
    parser.add_argument("--settle-s", type=float, default=5.0, help="wait before reading RSS")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="limit on connecting")
    args = parser.parse_args(argv)
    limit = raise_nofile_limit()
    if args.n + 100 > limit:
        print(f"warning: open-file limit {limit} is below N + 100", file=sys.stderr)
    print(machine())
    results: list[Measurement] = []
    with echo_server(SERVER_ENV) as echo:
        results.append(measure("bare echo", echo, None, args))
    with livetutor_server(SERVER_ENV) as tutor:
        results.append(measure("LiveTutor", tutor.server, tutor.secret, args))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
