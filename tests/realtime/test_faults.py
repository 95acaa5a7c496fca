"""Faults with real processes: a pod killed mid-answer, a pod stalled while Redis drops its
subscriber, the Redis master killed mid-answer."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devtools.cluster import DevCluster, redis_command
from realtime.client import Answer, TutorClient

# Paced so that an answer outlives the fault and its recovery.
POD_ENV = {
    "LIVETUTOR_LLM_OFFLINE_PACE_MS": "30",
    "LIVETUTOR_ASK_BURST": "50",
    "LIVETUTOR_LOG_LEVEL": "warning",
}
QUESTION = "Explain correlation and causation, with how to argue for causation"


async def follow_in_other_tab(client: TutorClient, session: str, ask: str) -> Answer:
    """Open the session in another tab and follow its running answer to the end."""
    running = await open_in_other_tab(client, session)
    return await follow_to_the_end(client, ask, running)


async def open_in_other_tab(client: TutorClient, session: str) -> dict[str, Any]:
    """Open the session in another tab: its running answer, with the text so far."""
    await client.send({"type": "open", "id": "o", "session": session})
    opened = await client.wait_for(lambda f: f["type"] == "session", timeout_s=10)
    running: dict[str, Any] = opened["streams"][0]
    return running


async def follow_to_the_end(client: TutorClient, ask: str, running: dict[str, Any]) -> Answer:
    """Follow an answer opened with :func:`open_in_other_tab` to its end; the whole text."""
    rest = await client.answer(ask, stream=running["stream"], after=running["seq"], timeout_s=60)
    rest.text = running["text"] + rest.text
    return rest


@dataclass
class Followed:
    """An answer asked on the first pod and followed in a tab on the second."""

    asker: TutorClient
    watcher: TutorClient
    ask: str
    start: dict[str, Any]  # its stream.start
    seen: int  # the last seq the asker has read
    following: asyncio.Task[Answer]  # the tab's whole answer, once it ends


async def ask_and_follow(cluster: DevCluster, token: str) -> Followed:
    """Ask on the first pod and read five deltas there, then open the session in a tab on
    the second and follow the answer there in a task."""
    first, second = cluster.pods[:2]
    asker = await TutorClient.connect(first.ws_url, token)
    watcher = await TutorClient.connect(second.ws_url, token)
    ask = await asker.ask(QUESTION)
    start = await asker.wait_for(lambda f: f["type"] == "stream.start")
    seen = 0
    for _ in range(5):
        seen = (await asker.wait_for(lambda f: f["type"] == "delta"))["seq"]
    running = await open_in_other_tab(watcher, start["session"])
    following = asyncio.create_task(follow_to_the_end(watcher, ask, running))
    return Followed(asker, watcher, ask, start, seen, following)


async def stored_answer(http_url: str, token: str, session: str) -> str:
    async with httpx.AsyncClient(base_url=http_url, timeout=10) as http:
        response = await http.get(
            f"/sessions/{session}/messages", headers={"Authorization": f"Bearer {token}"}
        )
    return str(response.json()["messages"][-1]["text"])


@pytest.fixture
async def two_pods() -> AsyncIterator[DevCluster]:
    env = {**POD_ENV, "LIVETUTOR_REDIS_LEASE_S": "1"}
    async with DevCluster(pods=2, sentinels=0, replica=False, pod_env=env) as cluster:
        yield cluster


async def test_killed_pod_answer_completes_on_another(two_pods: DevCluster) -> None:
    """kill -9 of the generating pod: another pod finishes the stream; nothing lost or repeated."""
    first, second = two_pods.pods
    token = two_pods.token("alice")
    run = await ask_and_follow(two_pods, token)
    stream, seen = run.start["stream"], run.seen
    await asyncio.sleep(0.2)
    await first.kill()
    # The learner on the dead pod reconnects to the live one and resumes.
    again = await TutorClient.connect(second.ws_url, token)
    await again.send({"type": "resume", "stream": stream, "after": seen})
    resumed = await again.answer(run.ask, stream=stream, after=seen, timeout_s=60)
    followed = await run.following
    stored = await stored_answer(second.http_url, token, run.start["session"])
    for client in (run.asker, run.watcher, again):
        await client.ws.close()
    assert followed.reason == resumed.reason == "stop"
    assert followed.end["taken_over"] is True
    assert followed.text == stored
    assert stored.endswith(resumed.text)
    assert resumed.seqs[0] == seen + 1


async def test_stalled_pod_whose_subscriber_redis_dropped_delivers_every_delta_once(
    two_pods: DevCluster,
) -> None:
    """The watching pod stops for a second (a long pause, a starved CPU) and Redis drops its
    subscriber meanwhile, as it drops one past its output buffer limit: the tab on that pod
    still gets every delta once and in order, then the whole stored answer."""
    second = two_pods.pods[1]
    token = two_pods.token("alice")
    run = await ask_and_follow(two_pods, token)
    os.kill(second.pid, signal.SIGSTOP)
    try:
        dropped = await redis_command(two_pods.redis[0].port, "CLIENT", "KILL", "TYPE", "pubsub")
        # The answer goes on while the pod is stopped: about 30 deltas it never hears.
        await asyncio.sleep(1.0)
    finally:
        os.kill(second.pid, signal.SIGCONT)
    direct = await run.asker.answer(run.ask, after=run.seen, timeout_s=60)
    followed = await run.following
    stored = await stored_answer(second.http_url, token, run.start["session"])
    for client in (run.asker, run.watcher):
        await client.ws.close()
    assert dropped >= 2  # every subscriber of both pods
    assert direct.reason == followed.reason == "stop"
    # The client raises on a gap or a repeat; the tab on the stalled pod ends where the asker does.
    assert followed.seqs[-1] == direct.seqs[-1]
    assert followed.text == stored


async def test_killed_master_every_token_once() -> None:
    """kill -9 of the Redis master mid-answer: Sentinel promotes the replica, no delta is lost."""
    env = {**POD_ENV, "LIVETUTOR_REDIS_LEASE_S": "5"}
    async with DevCluster(
        pods=2, sentinels=3, replica=True, down_after_ms=500, failover_timeout_ms=2000, pod_env=env
    ) as cluster:
        second = cluster.pods[1]
        token = cluster.token("alice")
        run = await ask_and_follow(cluster, token)
        await asyncio.sleep(0.3)
        old = await cluster.master()
        await old.kill()
        await cluster.wait_for_failover(old.port, timeout_s=20)
        direct = await run.asker.answer(run.ask, after=run.seen, timeout_s=60)
        followed = await run.following
        stored = await stored_answer(second.http_url, token, run.start["session"])
        # The journal on the new master is whole: a resume from the start replays it all.
        async with await TutorClient.connect(second.ws_url, token) as late:
            await late.send({"type": "resume", "stream": run.start["stream"], "after": 0})
            replayed = await late.answer(run.ask, stream=run.start["stream"], timeout_s=20)
        await run.asker.ws.close()
        await run.watcher.ws.close()
    assert direct.reason == followed.reason == replayed.reason == "stop"
    assert followed.text == stored
    assert stored.endswith(direct.text)
    assert replayed.text == stored
