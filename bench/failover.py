"""Redis master killed mid-answer: how long deltas stop, and whether any are lost.

Each trial starts a :class:`~devtools.cluster.DevCluster` with two pods,
a Redis master, a replica and three Sentinels configured with
``down-after-milliseconds`` D. The offline tutor is paced at ``--pace-ms``
(40 ms per word, 128 words: a 5 s answer, long enough to outlast the
failover). ``--learners-per-pod`` learners ask on each pod, and each has a
second tab on the *other* pod that ``open``s the session and follows the
same answer, so both pods have clients receiving both local and remote
streams. ``--kill-after-s`` after every client follows its answer, the
master is killed (SIGKILL). The Sentinels promote the replica; the pods
notice (a failed write or a changed master run id), repair the journals of
the streams they generate on the new master and publish again what their
subscribers may have missed.

Per client: the largest gap between two consecutive deltas where the later
one arrived after the kill (``stall``), and the time from the kill to the
delta that ended that gap (``kill -> flowing``). Deltas lost: every client
follows its answer with :meth:`realtime.client.TutorClient.answer`, which
raises on a gap or a repeated ``seq``; the text each client assembled is
compared with the stored answer (``GET /sessions/{id}/messages``), which
must itself equal the offline tutor's deterministic text; a client whose
answer has not ended ``FOLLOW_TIMEOUT_S`` (20 s) after it began is
``stuck``. "promoted" is the time from the kill until every Sentinel names
the new master. Finally each answer's journal on the new master (the Redis
Stream ``lt:j:<stream>`` that ``resume`` replays from) is read back, and
seqs missing from it are counted as ``journal holes``: a learner resuming
that answer from any pod would wait for them forever.

Run: ``python -m bench.failover [--down-after-ms 500,1000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass, field

from bench._common import fmt, machine, percentile, raise_nofile_limit, table
from bench._pods import QUESTION, offline_env, stored_messages
from core import keys
from devtools.cluster import DevCluster, redis_command
from realtime.client import Answer, StreamGapError, TutorClient

# An answer lasts about 5 s and a failover a few: a client still waiting after this is stuck.
FOLLOW_TIMEOUT_S = 20.0


@dataclass
class Follower:
    """One client following one answer: its arrivals and what it assembled."""

    name: str
    arrivals: list[float] = field(default_factory=list)
    text: str = ""
    reason: str = ""
    failure: str = ""

    def on_delta(self, _text: str) -> None:
        """Record the arrival of a delta."""
        self.arrivals.append(time.monotonic())

    def stall(self, killed_at: float) -> tuple[float, float]:
        """The largest gap ending after the kill, and kill -> the delta ending it (ms)."""
        best, flowing = math.nan, math.nan
        for before, after in zip(self.arrivals, self.arrivals[1:], strict=False):
            if after > killed_at and not (after - before <= best):
                best, flowing = after - before, after - killed_at
        return best * 1000, flowing * 1000


@dataclass
class Trial:
    """One kill of the master."""

    down_after_ms: int
    promoted_ms: float
    followers: list[Follower]
    killed_at: float
    journal_missing: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def stalls(self) -> list[tuple[float, float]]:
        """(stall ms, kill -> flowing ms) per client."""
        return [f.stall(self.killed_at) for f in self.followers]

    @property
    def complete(self) -> int:
        """Clients whose answer arrived whole, contiguous, and equal to the stored text."""
        return sum(1 for f in self.followers if not f.failure)

    @property
    def gaps(self) -> int:
        """Clients that saw a seq skipped or repeated."""
        return sum(1 for f in self.followers if f.failure.startswith("gap"))

    @property
    def stuck(self) -> int:
        """Clients whose answer never ended."""
        return sum(1 for f in self.followers if f.failure.startswith("stuck"))


async def _ask_and_follow(
    asker: TutorClient, watcher: TutorClient, own: Follower, other: Follower
) -> tuple[asyncio.Task[Answer], asyncio.Task[Answer], str, str]:
    """Ask on ``asker``; open the session on ``watcher``; both follow the answer."""
    ask = await asker.ask(QUESTION)
    start = await asker.wait_for(lambda f: f["type"] == "stream.start" and f["ask"] == ask)
    await watcher.send({"type": "open", "id": "open", "session": start["session"]})
    opened = await watcher.wait_for(lambda f: f["type"] == "session", timeout_s=10)
    running = next(s for s in opened["streams"] if s["stream"] == start["stream"])
    other.text = running["text"]
    own_task = asyncio.create_task(
        asker.answer(ask, timeout_s=FOLLOW_TIMEOUT_S, on_delta=own.on_delta)
    )
    other_task = asyncio.create_task(
        watcher.answer(
            ask,
            stream=start["stream"],
            after=running["seq"],
            timeout_s=FOLLOW_TIMEOUT_S,
            on_delta=other.on_delta,
        )
    )
    return own_task, other_task, start["session"], start["stream"]


async def _settle(task: asyncio.Task[Answer], follower: Follower) -> None:
    try:
        answer = await task
    except StreamGapError as exc:
        follower.failure = f"gap: {exc}"
        return
    except TimeoutError:
        follower.failure = f"stuck: no stream.end within {FOLLOW_TIMEOUT_S:.0f} s"
        return
    except Exception as exc:
        follower.failure = f"{type(exc).__name__}: {exc}"
        return
    follower.text += answer.text
    follower.reason = answer.reason
    if answer.reason != "stop":
        follower.failure = f"reason {answer.reason}"


async def trial(args: argparse.Namespace, down_after_ms: int, reference: str | None) -> Trial:
    """One cluster, answers on both pods, the master killed mid-answer."""
    env = offline_env(args.pace_ms)
    clients: list[TutorClient] = []
    tasks: list[tuple[asyncio.Task[Answer], Follower]] = []
    async with DevCluster(
        pods=2,
        sentinels=3,
        replica=True,
        down_after_ms=down_after_ms,
        failover_timeout_ms=args.failover_timeout_ms,
        pod_env=env,
    ) as cluster:
        try:
            followers: list[Follower] = []
            answers: list[tuple[str, str, str]] = []  # token, session, stream
            for p, pod in enumerate(cluster.pods):
                other_pod = cluster.pods[1 - p]
                for i in range(args.learners_per_pod):
                    token = cluster.token(f"failover-{p}-{i}")
                    asker = await TutorClient.connect(pod.ws_url, token)
                    watcher = await TutorClient.connect(other_pod.ws_url, token)
                    clients += [asker, watcher]
                    own = Follower(f"{pod.name} learner {i}")
                    other = Follower(f"{other_pod.name} tab of {pod.name} learner {i}")
                    own_task, other_task, session, stream = await _ask_and_follow(
                        asker, watcher, own, other
                    )
                    followers += [own, other]
                    tasks += [(own_task, own), (other_task, other)]
                    answers.append((token, session, stream))
            await asyncio.sleep(args.kill_after_s)
            master = await cluster.master()
            killed_at = time.monotonic()
            await master.kill()
            new_port = await cluster.wait_for_failover(master.port, timeout_s=30)
            promoted_ms = (time.monotonic() - killed_at) * 1000
            for task, follower in tasks:
                await _settle(task, follower)
            result = Trial(down_after_ms, promoted_ms, followers, killed_at)
            stored = []
            for token, session, stream in answers:
                messages = await stored_messages(cluster.pods[0].http_url, token, session)
                tutor = [m for m in messages if m["role"] == "tutor"]
                stored.append(tutor[-1]["text"] if tutor else "")
                missing = await journal_holes(new_port, stream)
                if missing:
                    result.journal_missing += len(missing)
                    result.problems.append(
                        f"journal of {stream[:8]} on the new master lacks seqs "
                        f"{missing[0]}..{missing[-1]} ({len(missing)})"
                    )
        finally:
            # Followers still running (the trial failed early) stop before their connections.
            for task, _ in tasks:
                task.cancel()
            await asyncio.gather(*(task for task, _ in tasks), return_exceptions=True)
            for client in clients:
                await client.close()
    for (own, other), text in zip(_pairs(followers), stored, strict=True):
        if reference is not None and text != reference:
            result.problems.append(f"stored answer of {own.name} differs from the reference")
        for follower in (own, other):
            if follower.failure:
                after = sum(1 for t in follower.arrivals if t > result.killed_at)
                result.problems.append(
                    f"{follower.name}: {follower.failure} ({after} deltas after the kill)"
                )
            elif follower.text != text:
                follower.failure = "text differs from the stored answer"
                result.problems.append(f"{follower.name}: {follower.failure}")
    return result


async def journal_holes(port: int, stream: str) -> list[int]:
    """Seqs missing below the highest one in the stream's journal on the Redis at ``port``."""
    entries = await redis_command(port, "XRANGE", keys.journal(stream), "-", "+")
    seqs = {int(entry_id[2:]) for entry_id, _ in entries if entry_id.startswith("0-")}
    return sorted(set(range(1, max(seqs, default=0) + 1)) - seqs)


def _pairs(followers: list[Follower]) -> list[tuple[Follower, Follower]]:
    return list(zip(followers[::2], followers[1::2], strict=True))


async def reference_text(args: argparse.Namespace) -> str:
    """The offline tutor's answer, from a one-pod cluster without Sentinel (unpaced)."""
    async with DevCluster(pods=1, sentinels=0, replica=False, pod_env=offline_env(0)) as cluster:
        token = cluster.token("failover-reference")
        async with await TutorClient.connect(cluster.pods[0].ws_url, token) as client:
            answer = await client.answer(await client.ask(QUESTION), timeout_s=30)
    return answer.text


def report(trials: list[Trial]) -> str:
    """One row per trial, one per D, and the verdict."""
    rows = []
    for n, t in enumerate(trials, 1):
        stalls = [s for s, _ in t.stalls if not math.isnan(s)]
        flowing = [f for _, f in t.stalls if not math.isnan(f)]
        rows.append(
            [
                f"D={t.down_after_ms} #{n}",
                fmt(t.promoted_ms, 0),
                fmt(percentile(flowing, 50), 0),
                fmt(max(flowing) if flowing else math.nan, 0),
                fmt(max(stalls) if stalls else math.nan, 0),
                f"{t.complete}/{len(t.followers)}",
                fmt(t.gaps),
                fmt(t.stuck),
                fmt(t.journal_missing),
            ]
        )
    by_d: dict[int, list[Trial]] = {}
    for t in trials:
        by_d.setdefault(t.down_after_ms, []).append(t)
    summary = []
    for d, group in by_d.items():
        flowing = [f for t in group for _, f in t.stalls if not math.isnan(f)]
        promoted = [t.promoted_ms for t in group]
        worst = max(flowing) if flowing else math.nan
        summary.append(
            [
                f"D={d}",
                fmt(len(group)),
                fmt(sum(promoted) / len(promoted), 0),
                fmt(percentile(flowing, 50), 0),
                fmt(worst, 0),
                f"{worst / d:.1f}x",
                f"{sum(t.complete for t in group)}/{sum(len(t.followers) for t in group)}",
            ]
        )
    lost = sum(len(t.followers) - t.complete for t in trials)
    holes = sum(t.journal_missing for t in trials)
    problems = [p for t in trials for p in t.problems]
    # Clients first: a stuck or gapped client matters more than the count of holes.
    problems.sort(key=lambda p: p.startswith("journal"))
    headers = ["trial", "promoted", "flowing p50", "flowing max", "stall max", "complete"]
    lines = [
        table(
            [*headers, "gaps", "stuck", "journal holes"],
            rows,
            title="Redis master killed mid-answer (ms from the kill; stall = largest gap)",
        ),
        "",
        table(
            ["D", "trials", "promoted", "flowing p50", "flowing max", "max / D", "complete"],
            summary,
            title="Per down-after-milliseconds",
        ),
        "",
        f"target 0 lost: {'met' if lost == holes == 0 else 'NOT met'} "
        f"({lost} of {sum(len(t.followers) for t in trials)} client answers incomplete or wrong; "
        f"{holes} deltas missing from journals on the new master)",
    ]
    if problems:
        lines += ["problems (first few):", *(f"  {p}" for p in problems[:8])]
    return "\n".join(lines)


async def measure(args: argparse.Namespace) -> list[Trial]:
    """Every trial, D by D."""
    reference = await reference_text(args)
    trials = []
    for d in args.down_after_ms:
        for _ in range(args.repeats):
            trials.append(await trial(args, d, reference))
    return trials


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the trials, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--down-after-ms",
        type=lambda s: [int(d) for d in s.split(",")],
        default=[500, 1000],
        help="Sentinel down-after-milliseconds values, comma-separated",
    )
    parser.add_argument("--repeats", type=int, default=3, help="trials per value")
    parser.add_argument("--failover-timeout-ms", type=int, default=3000)
    parser.add_argument("--pace-ms", type=float, default=40.0)
    parser.add_argument("--learners-per-pod", type=int, default=2)
    parser.add_argument("--kill-after-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    print(machine())
    trials = asyncio.run(measure(args))
    print(
        f"2 pods, Redis master + replica, 3 Sentinels; offline tutor at {args.pace_ms:g} ms per "
        f"word; {args.learners_per_pod} learners per pod, each followed on both pods; master "
        f"killed {args.kill_after_s:g} s into the answers; failover-timeout "
        f"{args.failover_timeout_ms} ms"
    )
    print(report(trials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
