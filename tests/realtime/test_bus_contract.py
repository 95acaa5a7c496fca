"""The StreamBus contract, held by the in-process bus and by the Redis bus on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from core.ids import new_id
from core.settings import RedisSettings
from devtools.cluster import RedisNode, redis_command
from realtime import protocol as p
from realtime.journal import StreamMeta
from realtime.order import StreamOrder
from realtime.redis_bus import RedisBus
from realtime.streams import MemoryBus, StreamBus
from tests.support.recorder import Recorder

TEXTS = ["One ", "two ", "three ", "four ", "five."]


class Owner:
    """A :class:`realtime.streams.StreamOwner` that records what the bus asks of it."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.taken_over: list[tuple[StreamMeta, list[str]]] = []
        self.abandoned: list[str] = []

    def cancel_local(self, stream_id: str, reason: str = "cancelled") -> bool:
        self.cancelled.append(stream_id)
        return True

    def take_over(self, meta: StreamMeta, deltas: list[str]) -> None:
        self.taken_over.append((meta, deltas))

    def abandon(self, stream_id: str) -> None:
        self.abandoned.append(stream_id)


MakeBus = Callable[[str], Awaitable[tuple[StreamBus, Owner]]]


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[MakeBus]:
    """Makes started buses of one kind (Redis ones share one redis-server); stops them after."""
    async with AsyncExitStack() as stack:
        node: RedisNode | None = None
        if request.param == "redis":
            node = RedisNode()
            await node.start()
            stack.push_async_callback(node.stop)

        async def make(pod: str) -> tuple[StreamBus, Owner]:
            bus: StreamBus
            if node is None:
                bus = MemoryBus(pod=pod)
            else:
                bus = RedisBus(RedisSettings(url=node.url, socket_timeout_s=1.0), pod=pod)
            owner = Owner()
            await bus.start(owner)
            stack.push_async_callback(bus.stop)
            await serving(bus)
            return bus, owner

        yield make


async def serving(bus: StreamBus) -> None:
    """Wait until the bus can serve (the Redis bus's subscriber is up), as readiness does."""
    async with asyncio.timeout(5):
        while bus.problem() is not None:  # noqa: ASYNC110 - set by the bus's reader task
            await asyncio.sleep(0.01)


@pytest.fixture
async def bus(make_bus: MakeBus) -> StreamBus:
    """One started bus on pod p1."""
    started, _ = await make_bus("p1")
    return started


def new_meta(bus: StreamBus, session: str, *, pod: str = "p1") -> StreamMeta:
    """The meta of a new stream, owned by ``pod`` in the bus's epoch (as the tutor opens it)."""
    return StreamMeta(
        stream=new_id(),
        session=session,
        user="alice",
        course="demo",
        ask="a1",
        mode="explain",
        question="What is a fallacy?",
        owner=pod,
        hint_level=2,
        epoch=bus.epoch,
    )


def start_frame(meta: StreamMeta) -> dict[str, Any]:
    return meta.start_frame()


def end_frame(meta: StreamMeta, seq: int) -> dict[str, Any]:
    return p.stream_end(meta.stream, seq, "stop", [], cached=False, model="m")


async def run_stream(bus: StreamBus, recorder: Recorder, meta: StreamMeta) -> None:
    """Open a stream, send every text of TEXTS as a delta, end it; return once delivered."""
    await bus.open(meta, start_frame(meta))
    for seq, text in enumerate(TEXTS, start=1):
        bus.delta(meta, seq, text)
    await bus.end(meta, end_frame(meta, len(TEXTS)))
    await recorder.wait_for_end(meta.stream)


async def test_frames_reach_a_joined_subscriber_in_order(bus: StreamBus) -> None:
    """stream.start, every delta by seq and stream.end arrive once each, in the order sent."""
    session, recorder = new_id(), Recorder()
    await bus.join(session, recorder)
    meta = new_meta(bus, session)
    await run_stream(bus, recorder, meta)
    expected = [
        start_frame(meta),
        *(p.delta(meta.stream, seq, text) for seq, text in enumerate(TEXTS, start=1)),
        end_frame(meta, len(TEXTS)),
    ]
    assert recorder.frames == expected


async def test_publish_reaches_only_the_session(bus: StreamBus) -> None:
    """A published frame reaches the session's subscribers and no other session's."""
    inside, outside = Recorder("in"), Recorder("out")
    session, other = new_id(), new_id()
    await bus.join(session, inside)
    await bus.join(other, outside)
    bus.publish(session, p.pong("x"))
    bus.publish(other, p.pong("barrier"))
    await outside.wait_for(lambda f: f.get("ref") == "barrier")
    await inside.wait_for(lambda f: f.get("ref") == "x")
    assert inside.frames == [p.pong("x")]
    assert outside.frames == [p.pong("barrier")]


async def test_left_subscriber_gets_nothing(bus: StreamBus) -> None:
    """After leave, frames of the session no longer reach that subscriber."""
    session, leaver, stayer = new_id(), Recorder("leaver"), Recorder("stayer")
    await bus.join(session, leaver)
    await bus.join(session, stayer)
    bus.publish(session, p.pong("before"))
    await leaver.wait_for(lambda f: f.get("ref") == "before")
    bus.leave(session, leaver)
    bus.publish(session, p.pong("after"))
    # Both members of a pod are delivered to together: once the stayer has it, so would the leaver.
    await stayer.wait_for(lambda f: f.get("ref") == "after")
    assert leaver.frames == [p.pong("before")]


@pytest.mark.parametrize("after", [0, 2, len(TEXTS), 10**6])
async def test_read_after_a_seq_replays_the_rest_and_the_end(bus: StreamBus, after: int) -> None:
    """read after seq k gives exactly the deltas k+1..n, then the stream.end."""
    session, recorder = new_id(), Recorder()
    await bus.join(session, recorder)
    meta = new_meta(bus, session)
    await run_stream(bus, recorder, meta)
    read = await bus.read(meta.stream, after)
    assert read.deltas == list(enumerate(TEXTS, start=1))[after:]
    assert read.end == end_frame(meta, len(TEXTS))
    assert read.frames(meta.stream) == recorder.frames[1 + min(after, len(TEXTS)) :]


async def test_read_of_a_running_stream_has_no_end(bus: StreamBus) -> None:
    """A stream not yet ended reads as its deltas so far, with no end frame."""
    session, recorder = new_id(), Recorder()
    await bus.join(session, recorder)
    meta = new_meta(bus, session)
    await bus.open(meta, start_frame(meta))
    bus.delta(meta, 1, TEXTS[0])
    bus.delta(meta, 2, TEXTS[1])
    await recorder.wait_for(lambda f: f.get("seq") == 2)
    read = await bus.read(meta.stream, 0)
    assert (read.deltas, read.end) == ([(1, TEXTS[0]), (2, TEXTS[1])], None)


async def test_unknown_stream_has_no_meta_and_reads_empty(bus: StreamBus) -> None:
    """A stream never opened has no meta, and reads as nothing at all."""
    read = await bus.read("never-opened", 0)
    assert await bus.meta("never-opened") is None
    assert (read.deltas, read.end) == ([], None)


async def test_meta_round_trips(bus: StreamBus) -> None:
    """The meta a stream was opened with comes back whole, field by field."""
    session = new_id()
    meta = new_meta(bus, session)
    expected = new_meta(bus, session)
    expected.stream, expected.started_at = meta.stream, meta.started_at
    await bus.open(meta, start_frame(meta))
    assert await bus.meta(meta.stream) == expected


async def test_running_lists_open_streams_until_they_end(bus: StreamBus) -> None:
    """running gives the session's open streams with their last seq; an ended one is gone."""
    session, recorder = new_id(), Recorder()
    await bus.join(session, recorder)
    meta = new_meta(bus, session)
    await bus.open(meta, start_frame(meta))
    for seq, text in enumerate(TEXTS[:3], start=1):
        bus.delta(meta, seq, text)
    await recorder.wait_for(lambda f: f.get("seq") == 3)
    assert await bus.running(session) == [(meta, 3)]
    assert await bus.running(new_id()) == []
    await bus.end(meta, end_frame(meta, 3))
    await recorder.wait_for_end(meta.stream)
    assert await bus.running(session) == []


async def test_cancel_request_for_an_ended_stream_is_refused(bus: StreamBus) -> None:
    """request_cancel is False once the stream has ended: no pod owns it any more."""
    session, recorder = new_id(), Recorder()
    await bus.join(session, recorder)
    meta = new_meta(bus, session)
    await run_stream(bus, recorder, meta)
    assert await bus.request_cancel(meta) is False


async def test_presence_lists_the_joined_connections(bus: StreamBus) -> None:
    """presence names every joined connection with its pod; one that left is gone."""
    session, first, second = new_id(), Recorder("c1"), Recorder("c2")
    await bus.join(session, first)
    await bus.join(session, second)
    bus.publish(session, p.pong("joined"))
    await first.wait_for(lambda f: f.get("ref") == "joined")
    listed = sorted(await bus.presence(session), key=lambda e: e["connection"])
    assert listed == [{"pod": "p1", "connection": "c1"}, {"pod": "p1", "connection": "c2"}]
    bus.leave(session, second)
    bus.publish(session, p.pong("left"))
    await first.wait_for(lambda f: f.get("ref") == "left")
    assert await bus.presence(session) == [{"pod": "p1", "connection": "c1"}]


async def test_started_bus_reports_no_problem(bus: StreamBus) -> None:
    """A started bus with a joined session can serve: problem() is None."""
    await bus.join(new_id(), Recorder())
    assert bus.problem() is None


# -- Redis only: what needs two pods on one Redis -----------------------------------


@pytest.fixture
async def redis_pods(redis_node: RedisNode) -> AsyncIterator[list[tuple[RedisBus, Owner]]]:
    """Two started Redis buses, pods p1 and p2, on one redis-server."""
    async with AsyncExitStack() as stack:
        pods = []
        for pod in ("p1", "p2"):
            bus = RedisBus(RedisSettings(url=redis_node.url, socket_timeout_s=1.0), pod=pod)
            owner = Owner()
            await bus.start(owner)
            stack.push_async_callback(bus.stop)
            await serving(bus)
            pods.append((bus, owner))
        yield pods


async def test_redis_frames_reach_a_subscriber_on_another_pod(
    redis_pods: list[tuple[RedisBus, Owner]],
) -> None:
    """A stream sent on p1 reaches a subscriber joined on p2, whole and in order."""
    (one, _), (two, _) = redis_pods
    session, here, there = new_id(), Recorder("here"), Recorder("there")
    await one.join(session, here)
    await two.join(session, there)
    meta = new_meta(one, session)
    await run_stream(one, here, meta)
    await there.wait_for_end(meta.stream)
    assert there.frames == here.frames
    assert [f["seq"] for f in there.frames if f["type"] == "delta"] == [1, 2, 3, 4, 5]


async def test_redis_cancel_request_reaches_the_owning_pod(
    redis_pods: list[tuple[RedisBus, Owner]],
) -> None:
    """request_cancel on p2 for a stream p1 owns is accepted and reaches p1's owner."""
    (one, owner_one), (two, owner_two) = redis_pods
    session = new_id()
    # Joining returns once p1's subscriber is up, its control channel included.
    await one.join(session, Recorder())
    meta = new_meta(one, session)
    await one.open(meta, start_frame(meta))
    assert await two.request_cancel(meta) is True
    async with asyncio.timeout(5):
        while owner_one.cancelled != [meta.stream]:  # noqa: ASYNC110 - set by p1's reader task
            await asyncio.sleep(0.01)
    assert owner_two.cancelled == []


async def test_redis_join_while_the_subscriber_connects_is_confirmed(redis_node: RedisNode) -> None:
    """A join made while the reader is still subscribing gets its subscription confirmed."""
    bus = RedisBus(RedisSettings(url=redis_node.url, socket_timeout_s=0.5), pod="p1")
    await bus.start(Owner())
    try:
        # Let the reader take its list of channels and start subscribing, then join.
        await asyncio.sleep(0)
        await bus.join(new_id(), Recorder())
    finally:
        await bus.stop()


class Tab(Recorder):
    """A recorder that orders and de-duplicates frames as a learner's connection does."""

    def __init__(self, connection: str = "tab") -> None:
        super().__init__(connection)
        self.order = StreamOrder(max_pending=1000)

    def deliver(self, frame: dict[str, Any], text: str) -> None:
        ready, _ = self.order.accept(frame, text)
        for item, item_text in ready:
            super().deliver(item, item_text)

    def following(self) -> set[str]:
        return self.order.following()

    def of_stream(self, stream: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("stream") == stream]


async def _cut_off(two: RedisBus, redis_node: RedisNode) -> None:
    """Close every pub/sub connection on the server; return once p2's reader noticed."""
    await redis_command(redis_node.port, "CLIENT", "KILL", "TYPE", "pubsub")
    async with asyncio.timeout(5):
        while two.problem() is None:  # noqa: ASYNC110 - cleared by p2's reader task
            await asyncio.sleep(0.001)


async def _begin(one: RedisBus, there: Tab, session: str) -> StreamMeta:
    """Open a stream on p1 and send its first delta; return once p2's tab has it."""
    meta = new_meta(one, session)
    await one.open(meta, start_frame(meta))
    one.delta(meta, 1, TEXTS[0])
    await there.wait_for(lambda f: f.get("seq") == 1 and f["stream"] == meta.stream)
    return meta


async def test_redis_answers_sent_while_a_subscriber_was_cut_off_reach_it_once(
    redis_node: RedisNode, redis_pods: list[tuple[RedisBus, Owner]]
) -> None:
    """Redis drops p2's subscriber (as it does one over its output buffer limit) while an
    answer runs on p1: the rest of that answer and a whole answer sent before p2 is back
    still reach p2's tab, every frame once and in order."""
    (one, _), (two, _) = redis_pods
    session, here, there = new_id(), Tab("here"), Tab("there")
    await one.join(session, here)
    await two.join(session, there)
    for _attempt in range(5):
        running = await _begin(one, there, session)
        await _cut_off(two, redis_node)
        for seq, text in enumerate(TEXTS[1:], start=2):
            one.delta(running, seq, text)
        await one.end(running, end_frame(running, len(TEXTS)))
        whole = new_meta(one, session)
        await run_stream(one, here, whole)
        # Both ends went out while p2 had no subscriber (else the cut came too late: again).
        if two.problem() is not None:
            break
    else:
        pytest.fail("p2's subscriber came back before p1 had sent both answers, five times")
    for meta in (running, whole):
        await there.wait_for_end(meta.stream)
        assert there.of_stream(meta.stream) == here.of_stream(meta.stream)
        deltas = [f["seq"] for f in there.of_stream(meta.stream) if f["type"] == "delta"]
        assert deltas == [1, 2, 3, 4, 5]
