"""Ping round trip over one WebSocket: LiveTutor against a bare Starlette echo.

The client sends ``{"type":"ping","id":"N"}`` and waits for the answer
before sending the next: LiveTutor answers ``pong`` (parse, validate,
dispatch, encode, outbound queue, writer task); the echo app of
:mod:`bench._echo_app` sends the frame straight back. Both servers run at
the same time as subprocesses with the same uvicorn WebSocket settings; the
client measures them in alternating blocks so that drift in the machine's
speed affects both alike. By default the client is pinned to one CPU and
both servers to another, so each run has the same placement.

The measurement is split into ``--rounds``, each with freshly started
servers whose environment and module search path are padded with a random
number of bytes. On this machine the length of ``PYTHONPATH`` alone moves
the echo's CPU cost per round trip by up to half (it shifts the memory
layout of everything the process allocates afterwards), so a single pair
of processes can make the ratio look better or worse than it is. Pooling
rounds with random padding averages that out, and the per-round ratios
show how large it is.

Run: ``python -m bench.ws_rtt [--round-trips 5000] [--warmup 500] [--rounds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import time
from dataclasses import dataclass, field

import msgspec
from websockets.asyncio.client import ClientConnection

from bench._common import (
    echo_server,
    fmt,
    livetutor_server,
    machine,
    percentile,
    summarize,
    table,
    ws_connect,
)

TARGET_RATIO = 1.25
MAX_ENV_PAD = 4096
MAX_PATH_PAD = 512
_decode = msgspec.json.Decoder().decode


async def _round_trips(ws: ClientConnection, start: int, count: int) -> list[float]:
    """``count`` sequential pings; each round trip in microseconds."""
    samples: list[float] = []
    for n in range(start, start + count):
        ref = str(n)
        text = f'{{"type":"ping","id":"{ref}"}}'
        began = time.perf_counter_ns()
        await ws.send(text)
        reply = _decode(await ws.recv())
        elapsed = time.perf_counter_ns() - began
        # LiveTutor answers {"type":"pong","ref":N}; the echo returns the ping itself.
        if reply.get("ref", reply.get("id")) != ref:
            raise RuntimeError(f"unexpected reply to ping {ref}: {reply}")
        samples.append(elapsed / 1000)
    return samples


@dataclass
class Series:
    """One server's round trips and the CPU its process spent on them."""

    samples_us: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0

    @property
    def cpu_per_round_trip_us(self) -> float:
        """Server CPU time per measured round trip."""
        return self.server_cpu_s / len(self.samples_us) * 1e6 if self.samples_us else 0.0


def _padding(rng: random.Random) -> dict[str, str]:
    """A random-length environment and ``sys.path``, to vary the server's memory layout."""
    # A module search path entry that does not exist costs a failed stat per import at
    # start-up and nothing afterwards; its length shifts every later heap allocation.
    missing = os.path.join(".bench-layout-pad", "x" * rng.randrange(1, MAX_PATH_PAD))
    search = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), missing) if p)
    return {"BENCH_ENV_PAD": "x" * rng.randrange(MAX_ENV_PAD), "PYTHONPATH": search}


async def measure_round(
    round_trips: int, warmup: int, block: int, *, pin: bool, rng: random.Random
) -> dict[str, Series]:
    """One round: start both servers, alternate blocks of ``block`` round trips."""
    with livetutor_server(_padding(rng)) as tutor, echo_server(_padding(rng)) as echo:
        if pin:
            # Client on the first CPU, both servers on the last: the same placement for both,
            # not whatever the scheduler picks in this run.
            last = max(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            for server in (tutor.server, echo):
                os.sched_setaffinity(server.pid, {last})
        live = await ws_connect(tutor.server.ws_url(), tutor.token("bench-rtt"))
        welcome = _decode(await live.recv())
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"expected welcome, got {welcome}")
        bare = await ws_connect(echo.ws_url())
        targets = {"bare echo": (bare, echo), "LiveTutor": (live, tutor.server)}
        series = {name: Series() for name in targets}
        try:
            for ws, _ in targets.values():
                await _round_trips(ws, 0, warmup)
            gc.collect()
            gc.disable()
            done = 0
            while done < round_trips:
                count = min(block, round_trips - done)
                for name, (ws, server) in targets.items():
                    cpu_before = server.cpu_s()
                    series[name].samples_us += await _round_trips(ws, warmup + done, count)
                    series[name].server_cpu_s += server.cpu_s() - cpu_before
                done += count
        finally:
            gc.enable()
            for ws, _ in targets.values():
                await ws.close()
    return series


def _p50_ratio(series: dict[str, Series]) -> float:
    return percentile(series["LiveTutor"].samples_us, 50) / percentile(
        series["bare echo"].samples_us, 50
    )


def report(series: dict[str, Series], round_ratios: list[float]) -> str:
    """The results table."""
    stats = {name: summarize(s.samples_us) for name, s in series.items()}
    keys = ("p50", "p90", "p99", "mean")
    rows = [
        [
            name,
            fmt(len(s.samples_us)),
            *(fmt(stats[name][k]) for k in keys),
            fmt(s.cpu_per_round_trip_us),
        ]
        for name, s in series.items()
    ]
    base, live = stats["bare echo"], stats["LiveTutor"]
    base_cpu = series["bare echo"].cpu_per_round_trip_us
    live_cpu = series["LiveTutor"].cpu_per_round_trip_us
    rows.append(
        ["LiveTutor - echo", "", *(fmt(live[k] - base[k]) for k in keys), fmt(live_cpu - base_cpu)]
    )
    rows.append(
        [
            "LiveTutor / echo",
            "",
            *(f"{live[k] / base[k]:.2f}x" for k in keys),
            f"{live_cpu / base_cpu:.2f}x" if base_cpu else "n/a",
        ]
    )
    ratio = live["p50"] / base["p50"]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    lines = [
        table(
            ["server", "round trips", "p50 us", "p90 us", "p99 us", "mean us", "server CPU us/rt"],
            rows,
            title="WebSocket ping round trip (sequential, one connection each)",
        ),
        "",
        "p50 ratio per round: "
        + ", ".join(f"{r:.2f}x" for r in round_ratios)
        + f" (median {percentile(round_ratios, 50):.2f}x)",
        f"target: LiveTutor p50 within {TARGET_RATIO:.2f}x of bare echo: {verdict} ({ratio:.2f}x)",
    ]
    return "\n".join(lines)


async def measure(args: argparse.Namespace, pin: bool) -> tuple[dict[str, Series], list[float]]:
    """All rounds; the pooled series and each round's p50 ratio."""
    rng = random.Random(args.seed)
    pooled = {"bare echo": Series(), "LiveTutor": Series()}
    ratios: list[float] = []
    per_round, extra = divmod(args.round_trips, args.rounds)
    for i in range(args.rounds):
        count = per_round + (1 if i < extra else 0)
        series = await measure_round(count, args.warmup, args.block, pin=pin, rng=rng)
        ratios.append(_p50_ratio(series))
        for name, s in series.items():
            pooled[name].samples_us += s.samples_us
            pooled[name].server_cpu_s += s.server_cpu_s
    return pooled, ratios


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=5000, help="measured, per server")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured, per server and round")
    parser.add_argument("--rounds", type=int, default=10, help="fresh server pairs")
    parser.add_argument("--block", type=int, default=250, help="round trips per alternation")
    parser.add_argument("--seed", type=int, help="for the environment padding (default random)")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the scheduler place processes (default: client on one CPU, servers on another)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.round_trips < args.rounds:
        parser.error("need at least one round and one round trip per round")
    if args.seed is None:
        args.seed = random.randrange(2**31)
    print(machine())
    pin = args.pin and len(os.sched_getaffinity(0)) > 1
    pooled, ratios = asyncio.run(measure(args, pin))
    placement = "client on one CPU, both servers on another" if pin else "unpinned"
    print(f"placement: {placement}; {args.rounds} rounds, padding seed {args.seed}")
    print(report(pooled, ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
