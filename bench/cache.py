"""The two-tier cache: hit latency per tier, hit rate on a Zipf stream, cached answers per second.

Four measurements, each against its baseline in the same run:

1. **L1 hit**: ``TwoTierCache.get`` of a key held in L1, against a bare
   ``cachetools.TTLCache`` lookup (the floor).
2. **L2 hit**: ``get`` of a key only in Redis (a redis-server started on a
   free port, loopback), against a bare redis-py ``GET`` of the same key on
   the same client (the floor).
3. **Hit rate**: a stream of questions drawn from 10,000 distinct ones with
   Zipf weights (s = 1.1), through ``get_or_load`` with the default L1 size,
   with L2 in Redis and with L1 alone (embedded). Every miss is one model
   call; hits are model calls saved.
4. **Answers per second per pod**: many learners asking over WebSockets,
   each ask in a new session, against ``livetutor serve`` on embedded
   defaults with the offline tutor unpaced: one question asked by all (every
   answer but the first from the cache) against the same load with the cache
   turned off (``LIVETUTOR_CACHE_ENABLED=false``).

With ``--pin`` the pod (every thread) runs on one CPU and the learners on the
others, a stand-in for clients on a machine of their own.

Run: ``python -m bench.cache [--requests 50000] [--seconds 10] [--clients 50] [--pin]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time

import msgspec
from cachetools import TTLCache
from websockets.asyncio.client import ClientConnection

from bench._common import fmt, livetutor_server, machine, pin_apart, summarize, table
from bench._pods import QUESTION, CpuMeter, CpuUsage, connect, offline_env
from cache.answers import ANSWERS, CachedAnswer
from cache.codec import Namespace
from cache.redis_tier import RedisTier
from cache.two_tier import TwoTierCache
from core import keys
from core.redis_link import connect as redis_connect
from core.settings import CacheSettings, RedisSettings
from devtools.cluster import RedisNode

ANSWER = CachedAnswer(
    text="Validity is about form: " + "word " * 120,
    sources=[{"document": "Thinking Clearly", "page": 2, "heading": "Arguments", "snippet": "…"}],
    model="offline",
    created_at=0.0,
)
LABELS: Namespace[str] = Namespace("bench_labels", str)


async def l1_hits(samples: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per-call microseconds: TwoTierCache L1 hit, and a bare TTLCache lookup."""
    cache = TwoTierCache(CacheSettings())
    await cache.set(ANSWERS, "k", ANSWER)
    bare: TTLCache[str, CachedAnswer] = TTLCache(maxsize=1000, ttl=300)
    bare["answers:1.0:k"] = ANSWER
    ours, floor = [], []
    clock = time.perf_counter_ns
    for _ in range(samples):
        t0 = clock()
        await cache.get(ANSWERS, "k")
        t1 = clock()
        bare.get("answers:1.0:k")
        t2 = clock()
        ours.append((t1 - t0) / 1000)
        floor.append((t2 - t1) / 1000)
    return summarize(ours), summarize(floor)


async def l2_hits(node: RedisNode, samples: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per-call microseconds: an L2 hit (L1 of one entry, two keys alternating), a bare GET."""
    client = redis_connect(RedisSettings(url=node.url))
    writer = TwoTierCache(CacheSettings(), RedisTier(client))
    reader = TwoTierCache(CacheSettings(l1_size=1), RedisTier(client))
    try:
        for key in ("a", "b"):
            await writer.set(ANSWERS, key, ANSWER)
        ours, floor = [], []
        clock = time.perf_counter_ns
        for key in itertools.islice(itertools.cycle("ab"), samples):
            t0 = clock()
            await reader.get(ANSWERS, key)
            t1 = clock()
            await client.get(keys.cache_value("answers:1.0:a"))
            t2 = clock()
            ours.append((t1 - t0) / 1000)
            floor.append((t2 - t1) / 1000)
        return summarize(ours), summarize(floor)
    finally:
        await client.aclose()


def zipf_stream(distinct: int, s: float, requests: int, seed: int = 7) -> list[int]:
    """``requests`` question numbers in 0..distinct-1, question n drawn with weight 1/(n+1)^s."""
    weights = [1 / (n + 1) ** s for n in range(distinct)]
    return random.Random(seed).choices(range(distinct), weights=weights, k=requests)


async def hit_rate(cache: TwoTierCache, stream: list[int]) -> tuple[int, int]:
    """(hits, loads) for the stream through ``get_or_load``."""
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        return "answer"

    for question in stream:
        await cache.get_or_load(LABELS, f"q{question}", load)
    return len(stream) - loads, loads


async def answers_per_second(
    clients: int, seconds: float, *, cached: bool, pin: bool = False
) -> tuple[int, float, CpuUsage]:
    """(answers, seconds, CPU) for ``clients`` learners each keeping two asks in flight."""
    on = "true" if cached else "false"
    env = offline_env(0, LIVETUTOR_CACHE_ENABLED=on, LIVETUTOR_CACHE_ANSWERS=on)
    env["LIVETUTOR_MAX_CONNECTIONS"] = "100000"
    with livetutor_server(env) as pod:
        if pin:
            print(f"placement: {pin_apart(pod.server.pid)}")
        url = pod.server.ws_url()
        sockets = [await connect(url, pod.token(f"learner-{i}")) for i in range(clients)]
        ask = msgspec.json.encode(
            {"type": "ask", "id": "a", "course": "demo", "text": QUESTION, "mode": "explain"}
        ).decode()
        # Warm the cache (and everything else) with one answer first.
        await sockets[0].send(ask)
        while '"stream.end"' not in str(await sockets[0].recv()):
            pass
        done = 0
        stop_at = 0.0

        async def learner(ws: ClientConnection) -> None:
            nonlocal done
            in_flight = 2
            for _ in range(in_flight):
                await ws.send(ask)
            # After the deadline no new ask goes out, but the ones in flight are read to
            # their end: a client that stops reading would stall its connection.
            while in_flight:
                frame = str(await ws.recv())
                if '"stream.end"' in frame:
                    in_flight -= 1
                    if time.perf_counter() < stop_at:
                        done += 1
                        await ws.send(ask)
                        in_flight += 1
                elif '"type":"error"' in frame:
                    raise RuntimeError(f"server refused an ask: {frame}")

        meter = CpuMeter({"pod": pod.server.pid})
        meter.start()
        # Answers that end before the deadline count; the window is exactly ``seconds``.
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(learner(ws) for ws in sockets))
        cpu = meter.stop()
        for ws in sockets:
            await ws.close()
    return done, seconds, cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--distinct", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the pod on one CPU and the learners on the others",
    )
    args = parser.parse_args()
    print(machine())

    l1, bare = await l1_hits(args.samples)
    node = RedisNode(name="bench-redis")
    await node.start()
    try:
        l2, get = await l2_hits(node, args.samples // 4)
        stream = zipf_stream(args.distinct, 1.1, args.requests)
        client = redis_connect(RedisSettings(url=node.url))
        try:
            with_l2 = await hit_rate(TwoTierCache(CacheSettings(), RedisTier(client)), stream)
        finally:
            await client.aclose()
    finally:
        await node.stop()
    l1_only = await hit_rate(TwoTierCache(CacheSettings()), stream)

    rows = [
        ["L1 hit (TwoTierCache.get)", fmt(l1["p50"], 2), fmt(l1["p99"], 2)],
        ["  baseline: bare TTLCache lookup", fmt(bare["p50"], 2), fmt(bare["p99"], 2)],
        ["L2 hit (Redis on loopback)", fmt(l2["p50"], 1), fmt(l2["p99"], 1)],
        ["  baseline: bare redis-py GET", fmt(get["p50"], 1), fmt(get["p99"], 1)],
    ]
    print(table(["lookup", "p50 µs", "p99 µs"], rows, "\nCache lookups"))

    rows = []
    for name, (hits, loads) in (("L1 + L2 (Redis)", with_l2), ("L1 alone (embedded)", l1_only)):
        rows.append([name, fmt(100 * hits / len(stream)), fmt(hits), fmt(loads)])
    title = (
        f"\nZipf s=1.1 over {args.distinct:,} questions, {len(stream):,} asks, "
        f"L1 size {CacheSettings().l1_size:,}"
    )
    print(table(["tiers", "hit rate %", "model calls saved", "model calls"], rows, title))

    cached = await answers_per_second(args.clients, args.seconds, cached=True, pin=args.pin)
    uncached = await answers_per_second(args.clients, args.seconds, cached=False, pin=args.pin)
    rows = []
    for name, (answers, elapsed, cpu) in (
        ("cached (same question)", cached),
        ("  baseline: cache off", uncached),
    ):
        pod_cores = cpu.processes["pod"] / 100
        rows.append(
            [
                name,
                fmt(answers),
                fmt(answers / elapsed),
                fmt(cpu.processes["pod"], 0),
                fmt(answers / elapsed / max(pod_cores, 1e-9), 0),
            ]
        )
    title = f"\nAnswers per second, one pod, {args.clients} learners x 2 asks in flight"
    if args.pin:
        title += ", the pod on a CPU of its own"
    headers = ["path", "answers", "answers/s", "pod CPU %", "answers per pod CPU-s"]
    print(table(headers, rows, title))
    print(f"ratio: {cached[0] / cached[1] / max(uncached[0] / uncached[1], 1e-9):.1f}x")
    print(f"CPU, cached run: {cached[2].describe()}")


if __name__ == "__main__":
    asyncio.run(main())
