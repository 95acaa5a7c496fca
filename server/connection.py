"""One WebSocket connection: reader, writer, bounded outbound queue, dispatch.

The reader parses frames with :mod:`realtime.protocol` and dispatches them;
the writer drains a bounded queue to the socket. Frames from the session
hub are queued without blocking: when the queue is full the client is not
reading, and the connection is closed with 1008 rather than let memory grow
or slow anyone else. Deltas are de-duplicated by ``seq`` per stream, so
replay and live delivery can overlap safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import structlog
from starlette.websockets import WebSocket

from core.auth import Principal
from core.errors import BusUnavailable, StoreError
from core.ids import new_id
from core.keys import user_channel
from realtime import protocol as p
from realtime.order import StreamOrder, StreamOrderOverflow
from realtime.protocol import CloseCode, ErrorCode, FrameError
from server.runtime import Runtime
from store.store import message_view

log = structlog.get_logger("livetutor.ws")
_STREAM_FRAMES = frozenset({"stream.start", "delta", "stream.end"})
_TAGS = {
    cls: str(cls.__struct_config__.tag)
    for cls in (p.Ask, p.Attempt, p.Cancel, p.Resume, p.Open, p.Typing, p.Ping)
}
# A gap is re-read from the journal this many times, this far apart, before it is logged.
_GAP_ATTEMPTS = 5
_GAP_RETRY_S = 0.2


class Connection:
    """A learner's socket, joined to the sessions it asked in, opened or resumed."""

    def __init__(self, ws: WebSocket, who: Principal, runtime: Runtime) -> None:
        self.id = new_id()[:16]
        self.who = who
        self._ws = ws
        self._rt = runtime
        self._limits = runtime.settings.ws
        self._queue: asyncio.Queue[str] = asyncio.Queue(self._limits.outbound_queue_frames)
        self._done = asyncio.Event()
        self._close_code: int | None = None
        self._close_reason = ""
        self._flush_on_close = True
        self._sessions: set[str] = set()
        self._order = StreamOrder(max_pending=self._limits.outbound_queue_frames)
        self._filling: set[str] | None = None
        self._own: set[str] = set()
        # While a resume or open reads the journal, live frames wait here so that
        # replay and live delivery come out in seq order.
        self._held: list[tuple[dict[str, Any], str]] | None = None
        self._last_frame_at = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- delivery (called from the hub; never blocks) -------------------------

    def deliver(self, frame: dict[str, Any], text: str) -> None:
        """Queue a frame; drop stream duplicates; close a client that stopped reading."""
        if self._done.is_set():
            return
        if self._held is not None:
            if len(self._held) >= self._limits.outbound_queue_frames:
                self._overflow()
                return
            self._held.append((frame, text))
            return
        self._queue_frame(frame, text)

    def following(self) -> set[str]:
        """Streams seen started or resumed here and not yet ended."""
        return self._order.following()

    def _queue_frame(self, frame: dict[str, Any], text: str) -> None:
        kind = frame["type"]
        if kind not in _STREAM_FRAMES:
            # pong, error, session, …: nothing to order.
            self._put(kind, text)
            return
        try:
            ready, gap = self._order.accept(frame, text)
        except StreamOrderOverflow:
            self._overflow()
            return
        if gap and frame["stream"] not in (self._filling or ()):
            if self._filling is None:
                self._filling = set()
            self._filling.add(frame["stream"])
            self._rt.tasks.spawn(self._fill_gap(frame["stream"]), name=f"gap-{self.id}")
        for item, item_text in ready:
            kind = item["type"]
            if kind == "stream.end":
                self._own.discard(item["stream"])
            if not self._put(kind, item_text):
                return

    def _put(self, kind: str, text: str) -> bool:
        """Queue one frame for the writer; False (and closed) if the client stopped reading."""
        self._rt.metrics.frame_out(kind)
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self._overflow()
            return False
        return True

    async def _fill_gap(self, stream: str) -> None:
        """A delta arrived ahead of ones this connection lacks: read them from the journal."""
        try:
            for attempt in range(_GAP_ATTEMPTS):
                if self._done.is_set() or not self._order.waiting(stream):
                    return
                if attempt:
                    await asyncio.sleep(_GAP_RETRY_S)
                try:
                    read = await self._rt.bus.read(stream, self._order.last(stream))
                except BusUnavailable:
                    continue
                for item in read.frames(stream):
                    self._queue_frame(item, p.encode(item))
            if self._order.waiting(stream):
                log.warning("ws.gap_unfilled", connection=self.id, stream=stream)
        finally:
            if self._filling is not None:
                self._filling.discard(stream)

    def _overflow(self) -> None:
        self._rt.metrics.slow_consumers.inc()
        log.warning("ws.slow_consumer", connection=self.id, queued=self._queue.qsize())
        self.close(CloseCode.POLICY_VIOLATION, "slow consumer: outbound queue full", flush=False)

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame for this connection only (ahead of any held live frames)."""
        if not self._done.is_set():
            self._queue_frame(frame, p.encode(frame))

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        """Hold live frames back, then release them through the usual de-duplication."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for frame, text in held:
                self.deliver(frame, text)

    def close(self, code: int | None, reason: str = "", *, flush: bool = True) -> None:
        """Ask the connection to end; ``None`` means the client is already gone."""
        if self._done.is_set():
            return
        self._close_code, self._close_reason, self._flush_on_close = code, reason, flush
        self._done.set()

    @property
    def busy(self) -> bool:
        """True while a stream this connection follows has not ended."""
        return bool(self._own) or bool(self._order.following())

    # -- life cycle -----------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until either side closes it."""
        s = self._limits
        self.send(
            p.welcome(
                self.id,
                self._rt.pod,
                self.who.user,
                {
                    "max_frame_bytes": s.max_frame_bytes,
                    "max_question_chars": s.max_question_chars,
                    "max_streams": s.max_streams_per_connection,
                    "idle_timeout_s": s.idle_timeout_s,
                },
            )
        )
        if self.who.role in ("instructor", "admin"):
            # Progress of the documents this user uploads, from any pod or worker.
            channel = user_channel(self.who.user)
            try:
                await self._rt.bus.join(channel, self)
                self._sessions.add(channel)
            except BusUnavailable:
                log.warning("ws.user_channel_unavailable", connection=self.id)
        reader = asyncio.create_task(self._read(), name=f"ws-read-{self.id}")
        writer = asyncio.create_task(self._write(), name=f"ws-write-{self.id}")
        try:
            await self._done.wait()
        finally:
            reader.cancel()
            if self._close_code is not None and self._flush_on_close:
                # Let queued frames (a reconnect notice, a stream.end) go out first.
                try:
                    async with asyncio.timeout(s.close_timeout_s):
                        await self._queue.join()
                except TimeoutError:
                    pass
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            for session in self._sessions:
                self._rt.bus.leave(session, self)
            await self._send_close()
        log.info("ws.closed", connection=self.id, code=self._close_code, reason=self._close_reason)

    async def _send_close(self) -> None:
        if self._close_code is None:
            return
        try:
            # A client that stopped reading cannot take the close frame either: bound the wait.
            async with asyncio.timeout(self._limits.close_timeout_s):
                await self._ws.close(self._close_code, self._close_reason)
        except (TimeoutError, RuntimeError, OSError):
            pass

    async def _write(self) -> None:
        try:
            while True:
                text = await self._queue.get()
                try:
                    await self._ws.send_text(text)
                finally:
                    self._queue.task_done()
        except (RuntimeError, OSError):
            self.close(None)
        except Exception as exc:
            # The ASGI server reports a vanished client with its own exception types.
            log.info("ws.write_failed", connection=self.id, error=type(exc).__name__)
            self.close(None)

    def _idle_check(self) -> None:
        """Close after idle_timeout_s without a frame, unless an answer is streaming."""
        loop = asyncio.get_running_loop()
        idle_s = self._limits.idle_timeout_s
        due = self._last_frame_at + idle_s
        if loop.time() >= due:
            if not self.busy:
                self.close(CloseCode.IDLE_TIMEOUT, "idle timeout")
                return
            due = loop.time() + idle_s
        self._idle_timer = loop.call_at(due, self._idle_check)

    async def _read(self) -> None:
        s = self._limits
        loop = asyncio.get_running_loop()
        # One timer per idle period, not one per frame: frames only stamp the time.
        self._last_frame_at = loop.time()
        self._idle_timer = loop.call_at(self._last_frame_at + s.idle_timeout_s, self._idle_check)
        try:
            await self._read_frames(loop)
        finally:
            self._idle_timer.cancel()

    async def _read_frames(self, loop: asyncio.AbstractEventLoop) -> None:
        s = self._limits
        while True:
            message = await self._ws.receive()
            self._last_frame_at = loop.time()
            if message["type"] == "websocket.disconnect":
                self.close(None)
                return
            text = message.get("text")
            if text is None:
                self.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not supported")
                return
            if len(text) * 4 > s.max_frame_bytes and len(text.encode()) > s.max_frame_bytes:
                self.close(CloseCode.MESSAGE_TOO_BIG, "frame too big")
                return
            await self._handle(text)

    # -- frames ---------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        ref: str | None = None
        metrics = self._rt.metrics
        try:
            try:
                frame = p.parse_client_frame(text, max_text_chars=self._limits.max_question_chars)
            except FrameError:
                metrics.frame_in("invalid")
                raise
            metrics.frame_in(_TAGS[type(frame)])
            ref = frame.id
            if isinstance(frame, p.Ping):
                self.send(p.pong(frame.id))
            elif isinstance(frame, p.Ask):
                await self._ask(frame)
            elif isinstance(frame, p.Cancel):
                await self._rt.tutor.cancel(self.who, frame.stream, frame.id)
            elif isinstance(frame, p.Resume):
                await self._resume(frame)
            elif isinstance(frame, p.Open):
                await self._open(frame)
            elif isinstance(frame, p.Typing):
                self._typing(frame)
            elif isinstance(frame, p.Attempt):
                await self._attempt(frame)
        except FrameError as exc:
            self.send(p.error(exc.code, exc.message, exc.ref))
        except StoreError:
            log.exception("ws.store_failed", connection=self.id)
            self.send(p.error(ErrorCode.INTERNAL, "storage is unavailable; try again", ref))
        except BusUnavailable:
            log.warning("ws.bus_unavailable", connection=self.id)
            self.send(
                p.error(ErrorCode.UNAVAILABLE, "live updates are unavailable; retry shortly", ref)
            )
        except Exception:
            # A bug must cost one frame, not the connection.
            log.exception("ws.frame_failed", connection=self.id)
            self.send(p.error(ErrorCode.INTERNAL, "internal error", ref))

    def _typing(self, frame: p.Typing) -> None:
        started = time.perf_counter()
        if not self.who.may_use(frame.course):
            raise FrameError(
                ErrorCode.COURSE_FORBIDDEN,
                f"your token does not grant course {frame.course!r}",
                frame.id,
            )
        items = self._rt.courses.predict(frame.course, frame.text)
        self.send(p.predictions(frame.text, items, frame.id))
        self._rt.metrics.prediction_seconds.observe(time.perf_counter() - started)
        self._rt.courses.warm(frame.course, frame.text)

    async def _ask(self, frame: p.Ask) -> None:
        if self._rt.draining:
            raise FrameError(ErrorCode.DRAINING, "this pod is restarting; reconnect", frame.id)
        if len(self._own) >= self._limits.max_streams_per_connection:
            raise FrameError(
                ErrorCode.TOO_MANY_STREAMS,
                f"at most {self._limits.max_streams_per_connection} answers at once per connection",
                frame.id,
            )
        wait_s = await self._rt.ask_limits.allow(self.who.user)
        if wait_s:
            self.send(
                p.error(
                    ErrorCode.RATE_LIMITED,
                    f"too many questions; try again in {wait_s:.1f} s",
                    frame.id,
                    retry_after_ms=int(wait_s * 1000) + 1,
                )
            )
            return
        stream, session = await self._rt.tutor.ask(self.who, frame, self)
        self._own.add(stream)
        self._sessions.add(session)

    async def _attempt(self, frame: p.Attempt) -> None:
        # Attempts share the ask budget: guessing a key by brute force is as limited as asking.
        wait_s = await self._rt.ask_limits.allow(self.who.user)
        if wait_s:
            self.send(
                p.error(
                    ErrorCode.RATE_LIMITED,
                    f"too many attempts; try again in {wait_s:.1f} s",
                    frame.id,
                    retry_after_ms=int(wait_s * 1000) + 1,
                )
            )
            return
        self.send(await self._rt.tutor.attempt(self.who, frame))

    async def _resume(self, frame: p.Resume) -> None:
        meta = await self._rt.bus.meta(frame.stream)
        resumes = self._rt.metrics.resumes
        if meta is None or meta.user != self.who.user:
            resumes.labels("unknown").inc()
            raise FrameError(
                ErrorCode.STREAM_UNKNOWN,
                "unknown or expired stream; read the answer from GET /sessions/{id}/messages",
                frame.id,
            )
        if meta.epoch != self._rt.bus.epoch:
            # Written before a Redis failover and not repaired by a live owner since.
            resumes.labels("resync").inc()
            raise FrameError(
                ErrorCode.STREAM_RESYNC,
                "this answer's journal may be incomplete after a failover; read it from "
                "GET /sessions/{id}/messages once it ends",
                frame.id,
            )
        with self._holding():
            await self._rt.bus.join(meta.session, self)
            self._sessions.add(meta.session)
            read = await self._rt.bus.read(meta.stream, frame.after)
            # The client says what it has: replay from there, even on this same connection.
            self._order.resume(meta.stream, frame.after)
            for item in read.frames(meta.stream):
                self.send(item)
        resumes.labels("ok").inc()

    async def _open(self, frame: p.Open) -> None:
        session = await self._rt.store.get_session(frame.session)
        if session is None or session.user_id != self.who.user:
            raise FrameError(ErrorCode.SESSION_FORBIDDEN, "no such session of yours", frame.id)
        messages = await self._rt.store.list_messages(session.id, 50)
        with self._holding():
            await self._rt.bus.join(session.id, self)
            self._sessions.add(session.id)
            streams = []
            for meta, _ in await self._rt.bus.running(session.id):
                read = await self._rt.bus.read(meta.stream, 0)
                seq = read.deltas[-1][0] if read.deltas else 0
                if read.end is None:
                    # The text so far goes in the session frame; live deltas follow from seq + 1.
                    self._order.resume(meta.stream, seq)
                    text = "".join(t for _, t in read.deltas)
                    streams.append(p.running_stream(meta.stream, meta.ask, seq, text))
            self.send(
                p.session(
                    frame.id,
                    session.id,
                    session.course,
                    session.title,
                    [message_view(m) for m in messages],
                    streams,
                    await self._rt.bus.presence(session.id),
                )
            )
