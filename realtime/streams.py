"""The stream bus: session fan-out plus the stream journal, behind one interface.

Everything a pod sends about a session goes through a :class:`StreamBus`:
``stream.start``, every ``delta`` (journaled, then published, in that
order), ``stream.end``, and other session frames. Two implementations are
chosen in one place (:func:`server.backends.create_shared`):

- :class:`MemoryBus` (embedded default): one process, :class:`LocalHub` and
  :class:`MemoryJournal`;
- :class:`realtime.redis_bus.RedisBus`: Redis pub/sub with one channel per
  session, a Redis Stream per answer, leases for ownership and takeover.
"""

from __future__ import annotations

from typing import Any, Protocol

from realtime import protocol
from realtime.hub import LocalHub, Subscriber
from realtime.journal import MemoryJournal, StreamMeta, StreamRead


class BusObserver(Protocol):
    """What the bus reports for metrics."""

    def published(self, seconds: float) -> None:
        """A batch of backplane writes took ``seconds``."""
        ...

    def delivered(self, lag_s: float) -> None:
        """A frame from another pod arrived ``lag_s`` after it was published."""
        ...

    def failover(self) -> None:
        """The shared store's master changed."""
        ...

    def takeover(self) -> None:
        """This pod took over a stream whose pod died."""
        ...


class StreamOwner(Protocol):
    """The pod's generator of streams, as the bus sees it (the tutor)."""

    def cancel_local(self, stream_id: str, reason: str = "cancelled") -> bool:
        """Stop an owned stream; False if this pod does not own it."""
        ...

    def take_over(self, meta: StreamMeta, deltas: list[str]) -> None:
        """Finish an orphaned stream from the deltas it had."""
        ...

    def abandon(self, stream_id: str) -> None:
        """Stop an owned stream that another pod now owns, without ending it."""
        ...


class StreamBus(Protocol):
    """Fan-out of session frames and the journal of every answer."""

    # Changes when the shared store behind the journal changes (a Redis failover).
    epoch: str

    async def start(self, owner: StreamOwner) -> None:
        """Connect and start background work on behalf of ``owner``."""
        ...

    async def stop(self) -> None:
        """Stop background work and disconnect."""
        ...

    async def join(self, session: str, subscriber: Subscriber) -> None:
        """Deliver the session's frames to ``subscriber``; returns once subscribed."""
        ...

    def leave(self, session: str, subscriber: Subscriber) -> None:
        """Stop delivering the session's frames to ``subscriber``."""
        ...

    def publish(self, session: str, frame: dict[str, Any]) -> None:
        """Send a frame to every connection of the session, on every pod."""
        ...

    async def open(self, meta: StreamMeta, start: dict[str, Any]) -> None:
        """Journal a new stream and publish its ``stream.start``."""
        ...

    def delta(self, meta: StreamMeta, seq: int, text: str) -> None:
        """Journal a delta, then publish it (in that order; never blocks)."""
        ...

    async def end(self, meta: StreamMeta, end: dict[str, Any]) -> None:
        """Journal the ``stream.end``, publish it, and let the journal expire later."""
        ...

    async def meta(self, stream: str) -> StreamMeta | None:
        """The stream's meta while it is journaled."""
        ...

    async def read(self, stream: str, after: int) -> StreamRead:
        """Journaled deltas with ``seq > after``, and the end frame if any."""
        ...

    async def running(self, session: str) -> list[tuple[StreamMeta, int]]:
        """Running streams of the session with their last seq."""
        ...

    async def request_cancel(self, meta: StreamMeta) -> bool:
        """Ask the pod that owns a stream to cancel it; False if no pod owns it."""
        ...

    async def presence(self, session: str) -> list[dict[str, str]]:
        """Live connections of the session on every pod: ``{"pod", "connection"}``."""
        ...

    def problem(self) -> str | None:
        """Why the bus cannot serve right now, or None when it can."""
        ...


class MemoryBus:
    """The bus of a single process."""

    def __init__(self, *, pod: str = "", ended_ttl_s: float = 600.0) -> None:
        self.pod = pod
        self.epoch = ""
        self.hub = LocalHub()
        self.journal = MemoryJournal(ended_ttl_s=ended_ttl_s)

    async def start(self, owner: StreamOwner) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Nothing to disconnect."""

    async def join(self, session: str, subscriber: Subscriber) -> None:
        """Join at once."""
        self.hub.join(session, subscriber)

    def leave(self, session: str, subscriber: Subscriber) -> None:
        """Leave at once."""
        self.hub.leave(session, subscriber)

    def publish(self, session: str, frame: dict[str, Any]) -> None:
        """Deliver to this process's connections."""
        self.hub.publish(session, frame)

    async def open(self, meta: StreamMeta, start: dict[str, Any]) -> None:
        """Journal and publish the start."""
        self.journal.open(meta)
        self.hub.publish(meta.session, start)

    def delta(self, meta: StreamMeta, seq: int, text: str) -> None:
        """Journal and publish a delta."""
        if self.journal.append(meta.stream, text) != seq:
            raise RuntimeError(f"delta {seq} of stream {meta.stream} out of order")
        self.hub.publish(meta.session, protocol.delta(meta.stream, seq, text))

    async def end(self, meta: StreamMeta, end: dict[str, Any]) -> None:
        """Journal and publish the end."""
        self.journal.finish(meta.stream, end)
        self.hub.publish(meta.session, end)

    async def meta(self, stream: str) -> StreamMeta | None:
        """The meta while the journal keeps the stream."""
        log = self.journal.get(stream)
        return log.meta if log else None

    async def read(self, stream: str, after: int) -> StreamRead:
        """Deltas after ``after`` and the end."""
        log = self.journal.get(stream)
        return log.read(after) if log else StreamRead([], None)

    async def running(self, session: str) -> list[tuple[StreamMeta, int]]:
        """Running streams of the session."""
        return [(log.meta, log.seq) for log in self.journal.running(session)]

    async def request_cancel(self, meta: StreamMeta) -> bool:
        """One process: a stream not owned here is not running anywhere."""
        return False

    def problem(self) -> str | None:
        """In process: never down."""
        return None

    async def presence(self, session: str) -> list[dict[str, str]]:
        """The session's connections in this process."""
        return [
            {"pod": self.pod, "connection": str(getattr(member, "id", ""))}
            for member in self.hub.subscribers(session)
        ]
