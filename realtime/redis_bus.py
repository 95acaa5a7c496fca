"""The stream bus on Redis: fan-out across pods, journal, leases, takeover, failover.

Every key and channel it uses, with its type, is tabled in :mod:`core.keys`:
a channel per session and per pod, and per stream a journal, its meta and
its lease, plus the running-stream sets and the sessions' presence.

Writes from the hot path (deltas) go through one ordered queue that a writer
task sends in pipelines, so a delta is always journaled before it is
published, and a pod never waits on Redis per token. The pod's own
connections get a frame once its batch is written, so no learner is ever
ahead of the journal that another pod would finish the stream from. Pub/sub
messages travel in the envelope of :mod:`core.keys` (origin pod, time sent,
frame json); a pod skips its own (it delivered them locally already).

The owning pod keeps every delta of its streams in memory until the
``stream.end`` is written. After an outage or a master change (a new
``epoch``, the master's run id) it re-writes what the new master lacks and
publishes it again; every pod then re-reads the journal for the streams its
connections follow. Connections drop duplicates by ``seq``, so learners see
every delta once.

The subscriber has a client of its own that never retries: redis-py's pub/sub
would reconnect and subscribe again by itself, and what was published in
between would be lost unseen. Here a lost subscriber (Redis closes one that
falls behind its output buffer limit, a master goes away) is noticed, and once
it is back the pod catches up from the journals: the streams running in its
sessions, the ones its connections follow, and those whose start or end went
out since the last message it heard (each session keeps its recent streams,
scored by that time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from redis.exceptions import ResponseError

from core import keys
from core.errors import BusUnavailable
from core.redis_link import UNREACHABLE, connect
from core.settings import RedisSettings
from realtime import protocol
from realtime.hub import LocalHub, Subscriber
from realtime.journal import StreamMeta, StreamRead
from realtime.protocol import encode
from realtime.streams import BusObserver, StreamOwner

log = structlog.get_logger("livetutor.bus")

_BATCH = 512
_MAX_QUEUED = 200_000
_END_ID = "1-0"
# Clocks of pods differ: catch-up reads this much further back than it must.
_CATCH_UP_SLACK_S = 2.0
_decode = msgspec.json.Decoder().decode

# Renew the leases we hold; return the ones another pod holds now.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif owner == false then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, key)
  end
end
return lost
"""
# Delete a lease only if we hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(slots=True)
class _Owned:
    """A stream this pod generates: everything needed to rewrite its journal."""

    meta: StreamMeta
    deltas: list[str] = field(default_factory=list)
    end: dict[str, Any] | None = None


# One queued write: a pipeline method name, its arguments, and what to run once written.
_Op = tuple[str, tuple[Any, ...], dict[str, Any], Callable[[], None] | None]


class RedisBus:
    """Fan-out and journal shared by every pod through Redis."""

    def __init__(
        self,
        settings: RedisSettings,
        *,
        pod: str,
        observer: BusObserver | None = None,
        client: Any = None,
    ) -> None:
        """``client`` is a Redis client to share (one is made from ``settings`` otherwise)."""
        self.hub = LocalHub()
        self._observer = observer
        self.pod = pod
        self.epoch = ""
        self._settings = settings
        self._lease_ms = int(settings.lease_s * 1000)
        # Any: redis-py types every reply as bytes | str; with decode_responses they are str.
        self._redis: Any = client if client is not None else connect(settings)
        self.redis = self._redis
        self._subscriber_client: Any = connect(settings, retries=0)
        self._ops: deque[_Op] = deque()
        self._wake = asyncio.Event()
        # Held while a batch is written and while a recovery rewrites journals.
        self._write_lock = asyncio.Lock()
        # Set while no write is queued or in flight.
        self._idle = asyncio.Event()
        self._idle.set()
        self._owned: dict[str, _Owned] = {}
        self._owner: StreamOwner | None = None
        self._pubsub: Any = None
        self._subscribed: set[str] = set()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._reconnected = False
        # The send time of the last message heard (or a time by which all were heard),
        # and, after the subscriber was lost, the earliest such time not yet caught up on.
        self._heard = time.time()
        self._missed_since: float | None = None
        self._losses = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._healthy = asyncio.Event()
        self._presence_due = 0.0
        # Loops also check this: a cancel racing a redis-py timeout can be lost.
        self._stopping = False
        self._renew_script = self._redis.register_script(_RENEW)
        self._release_script = self._redis.register_script(_RELEASE)

    # -- life cycle ---------------------------------------------------------

    async def start(self, owner: StreamOwner) -> None:
        """Connect (failing fast if Redis is unreachable) and start the background tasks."""
        self._owner = owner
        try:
            self.epoch = await self._master_epoch()
        except UNREACHABLE as exc:
            raise BusUnavailable(f"cannot reach Redis: {exc}") from exc
        self._healthy.set()
        for coro, name in (
            (self._write_loop(), "bus-writer"),
            (self._read_loop(), "bus-reader"),
            (self._lease_loop(), "bus-leases"),
            (self._watch_loop(), "bus-watch"),
        ):
            self._spawn(coro, name)
        log.info("bus.started", pod=self.pod, epoch=self.epoch)

    async def stop(self) -> None:
        """Flush pending writes (bounded), stop the tasks, close connections."""
        if self._healthy.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._idle.wait()
        self._stopping = True
        self._wake.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self._subscriber_client.aclose()
        await self._redis.aclose()

    def problem(self) -> str | None:
        """Redis unreachable, or the subscriber connection not up."""
        if not self._healthy.is_set():
            return "redis unreachable"
        if self._pubsub is None:
            return "redis subscriber reconnecting"
        return None

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _master_epoch(self) -> str:
        info = await self._redis.info("server")
        return str(info["run_id"])

    # -- membership ---------------------------------------------------------

    async def join(self, session: str, subscriber: Subscriber) -> None:
        """Join the session; subscribes the pod to its channel on first join."""
        self.hub.join(session, subscriber)
        self._queue("zadd", keys.presence(session), {self._member(subscriber): self._expiry_ms()})
        channel = keys.session_channel(session)
        if channel in self._subscribed:
            waiting = self._confirmations.get(channel)
            if waiting is not None:
                await self._confirmed(waiting)
            return
        self._subscribed.add(channel)
        waiting = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = waiting
        pubsub = self._pubsub
        if pubsub is not None:
            # If this fails, the reader resubscribes every channel when it reconnects.
            with contextlib.suppress(*UNREACHABLE):
                await pubsub.subscribe(channel)
        await self._confirmed(waiting)

    async def _confirmed(self, waiting: asyncio.Future[None]) -> None:
        try:
            async with asyncio.timeout(self._settings.socket_timeout_s):
                await asyncio.shield(waiting)
        except TimeoutError:
            raise BusUnavailable("Redis did not confirm the subscription") from None

    def leave(self, session: str, subscriber: Subscriber) -> None:
        """Leave; the pod unsubscribes when its last connection of the session leaves."""
        self.hub.leave(session, subscriber)
        self._queue("zrem", keys.presence(session), self._member(subscriber))
        channel = keys.session_channel(session)
        if self.hub.members(session) == 0 and channel in self._subscribed:
            self._subscribed.discard(channel)
            self._confirmations.pop(channel, None)
            if self._pubsub is not None:
                self._spawn(self._unsubscribe(self._pubsub, channel), "bus-unsubscribe")

    def _member(self, subscriber: Subscriber) -> str:
        return f"{self.pod}/{getattr(subscriber, 'id', id(subscriber))}"

    def _expiry_ms(self) -> int:
        return int((time.time() + self._settings.presence_ttl_s) * 1000)

    async def presence(self, session: str) -> list[dict[str, str]]:
        """Connections of the session on every pod that refreshed their entry in time."""
        key = keys.presence(session)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(key, "-inf", int(time.time() * 1000))
                pipe.zrange(key, 0, -1)
                _, members = await pipe.execute()
        except UNREACHABLE as exc:
            raise BusUnavailable(str(exc)) from exc
        out = []
        for member in members:
            pod, _, connection = member.partition("/")
            out.append({"pod": pod, "connection": connection})
        return out

    def _refresh_presence(self) -> None:
        expiry = self._expiry_ms()
        for session, members in self.hub.sessions():
            mapping = {self._member(m): expiry for m in members}
            self._queue("zadd", keys.presence(session), mapping)
            self._queue(
                "pexpire", keys.presence(session), int(self._settings.presence_ttl_s * 2000)
            )

    async def _unsubscribe(self, pubsub: Any, channel: str) -> None:
        with contextlib.suppress(*UNREACHABLE):
            await pubsub.unsubscribe(channel)

    # -- publishing ---------------------------------------------------------

    def publish(self, session: str, frame: dict[str, Any]) -> None:
        """Deliver here now and to the other pods through Redis."""
        self._queue_publish(session, frame, encode(frame))

    def _queue_publish(
        self, session: str, frame: dict[str, Any], text: str, then: Callable[[], None] | None = None
    ) -> None:
        """Publish after everything queued before; local connections get it once written,
        so no learner here is ever ahead of the journal (another pod may finish the stream)."""

        def delivered() -> None:
            self.hub.publish_text(session, frame, text)
            if then is not None:
                then()

        self._queue(
            "publish", keys.session_channel(session), _Stamped(self.pod, text), done=delivered
        )

    def _queue(
        self, method: str, *args: Any, done: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        if len(self._ops) >= _MAX_QUEUED:
            # Redis has been away long: drop the oldest writes; owners rewrite
            # their streams from memory when it is back.
            self._ops.popleft()
        self._ops.append((method, args, kwargs, done))
        self._idle.clear()
        self._wake.set()

    async def open(self, meta: StreamMeta, start: dict[str, Any]) -> None:
        """Write the meta, take the lease, then publish ``stream.start``."""
        meta.epoch = self.epoch
        meta.owner = self.pod
        self._owned[meta.stream] = _Owned(meta)
        try:
            await self._write_meta(meta)
        except UNREACHABLE as exc:
            self._owned.pop(meta.stream, None)
            raise BusUnavailable(f"cannot reach Redis: {exc}") from exc
        self.publish(meta.session, start)

    async def _write_meta(self, meta: StreamMeta) -> None:
        # A safety expiry: if every pod dies, the keys still go away.
        ttl_s = int(self._settings.journal_ttl_s + 3600)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.stream_meta(meta.stream), mapping=meta.to_fields())
            pipe.expire(keys.stream_meta(meta.stream), ttl_s)
            pipe.sadd(keys.RUNNING, meta.stream)
            pipe.sadd(keys.session_running(meta.session), meta.stream)
            pipe.expire(keys.session_running(meta.session), ttl_s)
            pipe.zadd(keys.session_streams(meta.session), {meta.stream: time.time()})
            pipe.expire(keys.session_streams(meta.session), ttl_s)
            pipe.set(keys.lease(meta.stream), self.pod, px=self._lease_ms)
            await pipe.execute()

    def delta(self, meta: StreamMeta, seq: int, text: str) -> None:
        """Journal, then publish; deliver here at once."""
        owned = self._owned.get(meta.stream)
        if owned is not None:
            owned.deltas.append(text)
        frame = protocol.delta(meta.stream, seq, text)
        encoded = encode(frame)
        self._queue(
            "xadd",
            keys.journal(meta.stream),
            {"t": text},
            id=f"0-{seq}",
            maxlen=self._settings.journal_maxlen,
            approximate=True,
        )
        self._queue_publish(meta.session, frame, encoded)

    async def end(self, meta: StreamMeta, end: dict[str, Any]) -> None:
        """Journal the end, let the journal expire later, release the lease, publish."""
        owned = self._owned.get(meta.stream)
        if owned is not None:
            owned.end = end
        self._queue_end(meta, end)

    def _end_writes(self, meta: StreamMeta, text: str) -> list[tuple[str, tuple[Any, ...]]]:
        """Journal the end, let the keys expire, leave the running sets, free the lease,
        and note the end's send time among the session's recent streams."""
        ttl_s = int(self._settings.journal_ttl_s)
        recent = keys.session_streams(meta.session)
        return [
            ("xadd", (keys.journal(meta.stream), {"e": text}, _END_ID)),
            ("expire", (keys.journal(meta.stream), ttl_s)),
            ("expire", (keys.stream_meta(meta.stream), ttl_s)),
            ("srem", (keys.RUNNING, meta.stream)),
            ("srem", (keys.session_running(meta.session), meta.stream)),
            ("zadd", (recent, _SentAt(meta.stream))),
            ("zremrangebyscore", (recent, "-inf", time.time() - ttl_s)),
            ("expire", (recent, ttl_s)),
            ("eval", (_RELEASE, 1, keys.lease(meta.stream), self.pod)),
        ]

    def _queue_end(self, meta: StreamMeta, end: dict[str, Any]) -> None:
        text = encode(end)
        for method, args in self._end_writes(meta, text):
            self._queue(method, *args)
        self._queue_publish(meta.session, end, text, then=lambda: self._forget(meta.stream))

    def _forget(self, stream: str) -> None:
        self._owned.pop(stream, None)

    # -- reading ------------------------------------------------------------

    async def meta(self, stream: str) -> StreamMeta | None:
        """The stream's meta while it is journaled."""
        try:
            raw = await self._redis.hgetall(keys.stream_meta(stream))
        except UNREACHABLE as exc:
            raise BusUnavailable(str(exc)) from exc
        return StreamMeta.from_fields(raw) if raw else None

    async def read(self, stream: str, after: int) -> StreamRead:
        """Journaled deltas with ``seq > after`` and the end frame if written."""
        try:
            entries = await self._redis.xrange(keys.journal(stream), min=f"0-{after + 1}", max="+")
        except UNREACHABLE as exc:
            raise BusUnavailable(str(exc)) from exc
        deltas: list[tuple[int, str]] = []
        end = None
        for entry_id, fields in entries:
            if entry_id == _END_ID:
                end = _decode(fields["e"])
            else:
                deltas.append((int(entry_id.partition("-")[2]), fields["t"]))
        return StreamRead(deltas, end)

    async def running(self, session: str) -> list[tuple[StreamMeta, int]]:
        """Running streams of the session, with their last journaled seq."""
        try:
            streams = sorted(await self._redis.smembers(keys.session_running(session)))
            if not streams:
                return []
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.hgetall(keys.stream_meta(stream))
                    pipe.xrevrange(keys.journal(stream), count=1)
                results = await pipe.execute()
        except UNREACHABLE as exc:
            raise BusUnavailable(str(exc)) from exc
        out = []
        for i in range(0, len(results), 2):
            raw, last = results[i], results[i + 1]
            if not raw or (last and last[0][0] == _END_ID):
                continue
            seq = int(last[0][0].partition("-")[2]) if last else 0
            out.append((StreamMeta.from_fields(raw), seq))
        return out

    async def request_cancel(self, meta: StreamMeta) -> bool:
        """Send ``cancel`` to the pod holding the stream's lease."""
        try:
            owner = await self._redis.get(keys.lease(meta.stream))
        except UNREACHABLE as exc:
            raise BusUnavailable(str(exc)) from exc
        if owner is None:
            return False
        if owner == self.pod:
            return self._owner is not None and self._owner.cancel_local(meta.stream)
        message = encode({"op": "cancel", "stream": meta.stream})
        self._queue("publish", keys.pod_channel(owner), _Stamped(self.pod, message))
        return True

    # -- background tasks ---------------------------------------------------

    async def _write_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._ops:
                batch = [self._ops.popleft() for _ in range(min(_BATCH, len(self._ops)))]
                try:
                    async with self._write_lock:
                        await self._execute(batch)
                except UNREACHABLE as exc:
                    # The failed batch is lost; the owners' repair rewrites their streams
                    # before anything queued since is sent.
                    await self._outage(exc)
            if not self._ops:
                self._idle.set()

    async def _execute(self, batch: list[_Op]) -> None:
        started = time.monotonic()
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for method, args, kwargs, _ in batch:
                getattr(pipe, method)(*_stamped(method, args, now), **kwargs)
            results = await pipe.execute(raise_on_error=False)
        if self._observer is not None:
            self._observer.published(time.monotonic() - started)
        for (method, _, _, done), result in zip(batch, results, strict=True):
            if isinstance(result, ResponseError) and "equal or smaller" not in str(result):
                log.warning("bus.write_refused", command=method, error=str(result))
            if done is not None:
                done()

    async def _outage(self, exc: BaseException) -> None:
        """Wait for Redis to answer again, then repair and catch up."""
        if self._healthy.is_set():
            log.warning("bus.redis_unreachable", error=type(exc).__name__)
        self._healthy.clear()
        delay_s = 0.05
        while not self._stopping:
            await asyncio.sleep(delay_s)
            try:
                epoch = await self._master_epoch()
            except UNREACHABLE:
                delay_s = min(delay_s * 2, 0.5)
                continue
            await self._recover(epoch)
            return

    async def _recover(self, epoch: str) -> None:
        """Rewrite the journals this pod owns on the (possibly new) master.

        Runs with the writer paused, so the repaired deltas reach the journal
        before any later delta queued meanwhile: Redis refuses a stream entry
        whose id is below the last one, so order matters.
        """
        async with self._write_lock:
            for owned in list(self._owned.values()):
                try:
                    await self._repair(owned, epoch)
                except UNREACHABLE as exc:
                    log.warning("bus.repair_failed", stream=owned.meta.stream, error=str(exc))
                    self._healthy.clear()
                    return
            if epoch != self.epoch:
                if self._observer is not None:
                    self._observer.failover()
                log.warning("bus.master_changed", old=self.epoch, new=epoch)
            self.epoch = epoch
            self._healthy.set()
        self._wake.set()
        log.info("bus.recovered", owned=len(self._owned), epoch=epoch)

    async def _repair(self, owned: _Owned, epoch: str) -> None:
        meta = owned.meta
        holder = await self._redis.get(keys.lease(meta.stream))
        if holder not in (None, self.pod):
            log.warning("bus.lease_lost", stream=meta.stream, holder=holder)
            self._owned.pop(meta.stream, None)
            if self._owner is not None:
                self._owner.abandon(meta.stream)
            return
        meta.epoch = epoch
        await self._write_meta(meta)
        last = await self._redis.xrevrange(keys.journal(meta.stream), count=1)
        deltas, end = list(owned.deltas), owned.end
        have = 0
        if last:
            have = len(deltas) if last[0][0] == _END_ID else int(last[0][0][2:])
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for seq in range(have + 1, len(deltas) + 1):
                text = deltas[seq - 1]
                frame = protocol.delta(meta.stream, seq, text)
                pipe.xadd(keys.journal(meta.stream), {"t": text}, id=f"0-{seq}")
                pipe.publish(
                    keys.session_channel(meta.session),
                    _Stamped(self.pod, encode(frame)).payload(now),
                )
            if end is not None:
                text = encode(end)
                for method, args in self._end_writes(meta, text):
                    getattr(pipe, method)(*_stamped(method, args, now))
                pipe.publish(
                    keys.session_channel(meta.session), _Stamped(self.pod, text).payload(now)
                )
            await pipe.execute(raise_on_error=False)
        # A batch that failed half-way may have reached Redis but not our own
        # connections; they drop whatever they already have.
        frames = [meta.start_frame()]
        frames += [protocol.delta(meta.stream, seq, text) for seq, text in enumerate(deltas, 1)]
        if end is not None:
            frames.append(end)
            self._forget(meta.stream)
        for frame in frames:
            self.hub.publish(meta.session, frame)

    async def _watch_loop(self) -> None:
        """Notice a master change even when no write failed (Sentinel promoted a replica)."""
        while not self._stopping:
            await asyncio.sleep(0.25)
            try:
                epoch = await self._master_epoch()
            except UNREACHABLE:
                continue
            if epoch != self.epoch or not self._healthy.is_set():
                await self._recover(epoch)

    async def _read_loop(self) -> None:
        delay_s = 0.05
        while not self._stopping:
            pubsub = self._subscriber_client.pubsub()
            try:
                channels = set(self._subscribed)
                await pubsub.subscribe(keys.pod_channel(self.pod), *channels)
                self._pubsub = pubsub
                # A join while that subscribe was in flight saw no subscriber and sent nothing.
                missed = self._subscribed - channels
                if missed:
                    await pubsub.subscribe(*missed)
                delay_s = 0.05
                await self._listen(pubsub)
            except UNREACHABLE as exc:
                log.warning("bus.subscriber_lost", error=type(exc).__name__)
            finally:
                self._pubsub = None
                self._reconnected = True
                self._losses += 1
                if self._missed_since is None or self._heard < self._missed_since:
                    self._missed_since = self._heard
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.5)

    async def _listen(self, pubsub: Any) -> None:
        while not self._stopping:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                # A second without a message on a live connection: all sent before it arrived.
                self._heard = max(self._heard, time.time() - 1.0)
                continue
            kind, channel = message["type"], message["channel"]
            if kind == "subscribe":
                waiting = self._confirmations.get(channel)
                if waiting is not None and not waiting.done():
                    waiting.set_result(None)
                if channel == keys.pod_channel(self.pod) and self._reconnected:
                    self._reconnected = False
                    self._spawn(self._catch_up(), "bus-catch-up")
                continue
            if kind != "message":
                continue
            origin, sent_at, text = keys.decode_envelope(message["data"])
            if sent_at is not None and sent_at > self._heard:
                self._heard = sent_at
            if origin == self.pod:
                continue
            if self._observer is not None and sent_at is not None:
                self._observer.delivered(time.time() - sent_at)
            frame = _decode(text)
            session = keys.session_of_channel(channel)
            if session is not None:
                self.hub.publish_text(session, frame, text)
            elif frame.get("op") == "cancel" and self._owner is not None:
                self._owner.cancel_local(str(frame.get("stream")))

    async def _catch_up(self) -> None:
        """After the subscriber reconnected: re-read what local connections may have missed.

        Retried until it succeeds, unless the subscriber is lost again meanwhile
        (its next confirmation starts a catch-up of its own, from as far back).
        """
        losses = self._losses
        since = self._missed_since
        since = (self._heard if since is None else since) - _CATCH_UP_SLACK_S
        delay_s = 0.05
        while not self._stopping and losses == self._losses:
            try:
                for session, members in self.hub.sessions():
                    await self._catch_up_session(session, members, since)
            except BusUnavailable as exc:
                log.warning("bus.catch_up_failed", error=str(exc))
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 1.0)
                continue
            if losses == self._losses:
                self._missed_since = None
            log.info("bus.caught_up", sessions=len(self.hub.sessions()), since=round(since, 3))
            return

    async def _catch_up_session(
        self, session: str, members: list[Subscriber], since: float
    ) -> None:
        """Replay to each member the session's streams it may have missed frames of since."""
        # The running streams' metas come with them; the others' are read below.
        metas = {meta.stream: meta for meta, _ in await self.running(session)}
        running = set(metas)
        try:
            recent = dict(
                await self._redis.zrangebyscore(
                    keys.session_streams(session), since, "+inf", withscores=True
                )
            )
        except UNREACHABLE as exc:
            raise BusUnavailable(str(exc)) from exc
        wanted: dict[Subscriber, set[str]] = {}
        for member in members:
            joined = (self.hub.joined_at(session, member) or 0.0) - _CATCH_UP_SLACK_S
            # A stream that ended before the member joined was never the member's.
            wanted[member] = (
                running | member.following() | {s for s, at in recent.items() if at >= joined}
            )
        every: set[str] = set()
        for streams in wanted.values():
            every |= streams
        for stream in sorted(every):
            meta = metas.get(stream) or await self.meta(stream)
            if meta is None:
                continue
            frames = [meta.start_frame(), *(await self.read(stream, 0)).frames(stream)]
            texts = [encode(frame) for frame in frames]
            for member, streams in wanted.items():
                if stream in streams:
                    for frame, text in zip(frames, texts, strict=True):
                        member.deliver(frame, text)

    async def _lease_loop(self) -> None:
        """Renew our leases; claim streams whose owner stopped renewing (it died)."""
        period_s = self._settings.lease_s / 3
        while not self._stopping:
            await asyncio.sleep(period_s)
            if not self._healthy.is_set():
                continue
            self._presence_due -= period_s
            if self._presence_due <= 0:
                self._presence_due = self._settings.presence_ttl_s / 3
                self._refresh_presence()
            try:
                await self._renew()
                await self._claim_orphans()
            except UNREACHABLE as exc:
                log.warning("bus.lease_check_failed", error=type(exc).__name__)

    async def _renew(self) -> None:
        running = [s for s, owned in self._owned.items() if owned.end is None]
        if not running:
            return
        lost = await self._renew_script(
            keys=[keys.lease(s) for s in running], args=[self.pod, self._lease_ms]
        )
        for key in lost:
            stream = keys.stream_of_lease(key)
            log.warning("bus.lease_lost", stream=stream)
            self._owned.pop(stream, None)
            if self._owner is not None:
                self._owner.abandon(stream)

    async def _claim_orphans(self) -> None:
        streams = [s for s in await self._redis.smembers(keys.RUNNING) if s not in self._owned]
        if not streams:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.exists(keys.lease(stream))
            held = await pipe.execute()
        for stream, exists in zip(streams, held, strict=True):
            if exists:
                continue
            if not await self._redis.set(keys.lease(stream), self.pod, nx=True, px=self._lease_ms):
                continue
            await self._adopt(stream)

    async def _adopt(self, stream: str) -> None:
        meta = await self.meta(stream)
        read = await self.read(stream, 0)
        if meta is None or read.end is not None or self._owner is None:
            # Ended (or vanished) but its bookkeeping was lost: tidy up.
            await self._redis.srem(keys.RUNNING, stream)
            if meta is not None:
                await self._redis.srem(keys.session_running(meta.session), stream)
            await self._release_script(keys=[keys.lease(stream)], args=[self.pod])
            return
        deltas = [text for _, text in read.deltas]
        meta.owner = self.pod
        self._owned[stream] = _Owned(meta, list(deltas))
        # The epoch stays as written: if the master changed since, the journal may lack
        # deltas the dead owner had sent, and resuming clients are told to resync.
        await self._redis.hset(keys.stream_meta(stream), "owner", self.pod)
        log.info("bus.takeover", stream=stream, seq=len(deltas))
        if self._observer is not None:
            self._observer.takeover()
        self._owner.take_over(meta, deltas)


@dataclass(frozen=True, slots=True)
class _SentAt:
    """A session's recent stream, scored by when its batch goes out."""

    stream: str


def _stamped(method: str, args: tuple[Any, ...], now: float) -> tuple[Any, ...]:
    """A queued command's arguments, with the send time filled in where one is due."""
    if method == "publish":
        # Stamped when sent, for the other pods' delivery lag and their catch-up.
        return (args[0], args[1].payload(now))
    if method == "zadd" and isinstance(args[1], _SentAt):
        return (args[0], {args[1].stream: now})
    return args


@dataclass(frozen=True, slots=True)
class _Stamped:
    """A pub/sub message whose send time is added when its batch goes out."""

    origin: str
    text: str

    def payload(self, now: float) -> str:
        return keys.encode_envelope(self.origin, now, self.text)
