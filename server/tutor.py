"""The tutor pipeline: one question in, one streamed, stored, cited answer out.

:meth:`Tutor.ask` checks the course and session, stores the learner's
message and opens a stream; the answer is generated in a task that
retrieves passages, builds the prompt, calls the LLM, coalesces tokens
into ``delta`` frames published to the session, and stores the answer with
its reason and sources at the end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

from realtime import protocol as p
from realtime.coalesce import Coalescer
from realtime.hub import LocalHub, Subscriber
from realtime.journal import MemoryJournal, StreamLog
from realtime.protocol import ErrorCode, FrameError
from server import prompts
from server.auth import Principal
from server.errors import LLMError, SessionCourseMismatch, SessionForbidden
from server.llm import LLMProvider, Mode, Prompt
from server.retrieval import Passage, Retriever
from server.settings import Settings
from server.store import MessageRecord, Store
from server.taskset import TaskSet

log = structlog.get_logger("livetutor.tutor")


def new_id() -> str:
    """A random 128-bit id in hex."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class _Stream:
    log: StreamLog
    mode: Mode
    question: str
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    parts: list[str] = field(default_factory=list)


class Tutor:
    """Runs asks as streams and keeps the running ones."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        retriever: Retriever,
        provider: LLMProvider,
        fallback: LLMProvider,
        hub: LocalHub,
        journal: MemoryJournal,
        tasks: TaskSet,
    ) -> None:
        self._settings = settings
        self._store = store
        self._retriever = retriever
        self._provider = provider
        self._fallback = fallback
        self._hub = hub
        self._journal = journal
        self._tasks = tasks
        self._streams: dict[str, _Stream] = {}

    @property
    def running(self) -> int:
        """Streams generating on this pod."""
        return len(self._streams)

    async def ask(self, who: Principal, frame: p.Ask, subscriber: Subscriber) -> tuple[str, str]:
        """Open a stream answering ``frame``; returns its stream and session ids."""
        if not who.may_use(frame.course):
            raise FrameError(
                ErrorCode.COURSE_FORBIDDEN,
                f"your token does not grant course {frame.course!r}",
                frame.id,
            )
        if frame.course not in self._retriever.courses():
            raise FrameError(ErrorCode.COURSE_UNKNOWN, f"no course {frame.course!r}", frame.id)
        session_id = frame.session or new_id()
        try:
            session = await self._store.open_session(session_id, who.user, frame.course)
        except SessionForbidden:
            raise FrameError(
                ErrorCode.SESSION_FORBIDDEN, "this session belongs to another user", frame.id
            ) from None
        except SessionCourseMismatch:
            raise FrameError(
                ErrorCode.SESSION_COURSE, "this session belongs to another course", frame.id
            ) from None
        history = await self._store.list_messages(session.id, self._settings.tutor.history_messages)
        if frame.mode == "hint":
            # Counted when asked, so a quick follow-up already gets the next level.
            await self._store.set_hint_level(session.id, session.hint_level + 1)
        await self._store.add_message(
            MessageRecord(
                id=new_id(),
                session_id=session.id,
                role="learner",
                text=frame.text,
                created_at=time.time(),
                mode=frame.mode,
            )
        )
        stream_id = new_id()
        stream = _Stream(
            log=self._journal.open(
                StreamLog(stream_id, session.id, who.user, frame.course, frame.id)
            ),
            mode=frame.mode,
            question=frame.text,
        )
        self._streams[stream_id] = stream
        self._hub.join(session.id, subscriber)
        start = p.stream_start(stream_id, frame.id, session.id, frame.course, frame.mode)
        start["text"] = frame.text
        self._hub.publish(session.id, start)
        stream.task = self._tasks.spawn(
            self._run(stream, history, session.hint_level), name=f"stream-{stream_id}"
        )
        return stream_id, session.id

    def cancel(self, who: Principal, stream_id: str, ref: str | None) -> None:
        """Stop a running stream of ``who``; it ends with reason ``cancelled``."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.log.user != who.user:
            raise FrameError(ErrorCode.STREAM_UNKNOWN, "no running stream with this id", ref)
        self._stop(stream, "cancelled")

    def stop_all(self, reason: str) -> None:
        """Stop every running stream (pod shutting down)."""
        for stream in list(self._streams.values()):
            self._stop(stream, reason)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no stream runs, at most ``timeout_s``; True if none is left."""
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        return not self._streams

    def _stop(self, stream: _Stream, reason: str) -> None:
        if stream.cancel_reason is None and stream.task is not None:
            stream.cancel_reason = reason
            stream.task.cancel()

    async def _run(self, stream: _Stream, history: list[MessageRecord], hint_level: int) -> None:
        sid = stream.log.stream
        with structlog.contextvars.bound_contextvars(stream=sid, session=stream.log.session):
            started = time.monotonic()
            passages: list[Passage] = []
            model = self._provider.model
            fallback = False
            reason, message = "stop", None
            coalescer = Coalescer(
                lambda text: self._emit(stream, text),
                flush_s=self._settings.tutor.flush_ms / 1000,
                max_tokens=self._settings.tutor.flush_tokens,
            )
            try:
                async with asyncio.timeout(self._settings.tutor.max_answer_s):
                    passages = await self._retriever.retrieve(
                        stream.log.course, stream.question, self._settings.tutor.top_k
                    )
                    prompt = prompts.build(
                        question=stream.question,
                        mode=stream.mode,
                        course=stream.log.course,
                        passages=passages,
                        history=history,
                        hint_level=hint_level,
                    )
                    try:
                        await self._generate(self._provider, prompt, stream, coalescer)
                    except LLMError as exc:
                        if stream.parts or not passages or self._provider is self._fallback:
                            raise
                        log.warning("llm.failed_fallback", error=type(exc).__name__)
                        self._hub.publish(
                            stream.log.session,
                            p.error(
                                ErrorCode.LLM_UNAVAILABLE,
                                f"{_describe(exc)}; answering from the course text instead",
                                stream.log.ask,
                            ),
                        )
                        model, fallback = self._fallback.model, True
                        await self._generate(self._fallback, prompt, stream, coalescer)
            except asyncio.CancelledError:
                coalescer.close()
                reason = stream.cancel_reason or "interrupted"
                await asyncio.shield(
                    self._finish(stream, reason, passages, model, fallback, None, started)
                )
                raise
            except LLMError as exc:
                reason, message = "error", _describe(exc)
                log.warning("llm.failed", error=type(exc).__name__)
                self._hub.publish(
                    stream.log.session,
                    p.error(ErrorCode.LLM_UNAVAILABLE, message, stream.log.ask),
                )
            except TimeoutError:
                reason, message = "length", "the answer took longer than the server allows"
            except Exception:
                log.exception("stream.failed")
                reason, message = "error", "internal error while answering"
            coalescer.close()
            await asyncio.shield(
                self._finish(stream, reason, passages, model, fallback, message, started)
            )

    async def _generate(
        self, provider: LLMProvider, prompt: Prompt, stream: _Stream, coalescer: Coalescer
    ) -> None:
        tokens = provider.stream(prompt)
        try:
            async for token in tokens:
                stream.parts.append(token)
                coalescer.add(token)
        finally:
            # Closes the upstream HTTP stream when we stop early (cancel, timeout).
            await tokens.aclose()

    def _emit(self, stream: _Stream, text: str) -> None:
        seq = self._journal.append(stream.log.stream, text)
        self._hub.publish(stream.log.session, p.delta(stream.log.stream, seq, text))

    async def _finish(
        self,
        stream: _Stream,
        reason: str,
        passages: list[Passage],
        model: str,
        fallback: bool,
        message: str | None,
        started: float,
    ) -> None:
        sid = stream.log.stream
        sources = [passage.source() for passage in passages] if stream.parts else []
        end = p.stream_end(
            sid,
            stream.log.seq,
            reason,
            sources,
            cached=False,
            model=model,
            fallback=fallback,
            message=message,
        )
        # Not cancellable from here on: the answer is complete or already stopped.
        self._streams.pop(sid, None)
        try:
            # Stored before stream.end goes out, so a client reading the session
            # after stream.end finds the answer.
            await self._store.add_message(
                MessageRecord(
                    id=new_id(),
                    session_id=stream.log.session,
                    role="tutor",
                    text="".join(stream.parts),
                    created_at=time.time(),
                    mode=stream.mode,
                    stream_id=sid,
                    reason=reason,
                    sources=sources,
                    model=model,
                    cached=False,
                )
            )
        except Exception:
            log.exception("stream.store_failed")
        self._journal.finish(sid, end)
        self._hub.publish(stream.log.session, end)
        log.info(
            "stream.ended",
            reason=reason,
            deltas=stream.log.seq,
            model=model,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        )


def _describe(exc: LLMError) -> str:
    return {
        "LLMTimeout": "the language model stopped responding",
        "CircuitOpen": "the language model is failing; try again shortly",
        "LLMRejected": "the language model refused the request",
    }.get(type(exc).__name__, "the language model is unavailable")


def describe_stream(log_: StreamLog) -> dict[str, Any]:
    """A running stream as listed in a ``session`` frame."""
    return {"stream": log_.stream, "ask": log_.ask, "seq": log_.seq}
