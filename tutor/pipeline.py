"""The tutor pipeline: one question in, one streamed, stored, cited answer out.

:meth:`Tutor.ask` checks the course and session, stores the learner's
message and opens a stream on the bus; the answer is generated in a task
that retrieves passages, builds the prompt, calls the LLM, coalesces tokens
into ``delta`` frames (journaled, then published to the session), and
stores the answer with its reason and sources at the end. In explain mode, a
question the course does not cover (its best passage is below the retriever's
calibrated threshold) is answered as such, naming the nearest pages, without
calling the model (:func:`tutor.generation.not_covered_answer`).

A question whose answer may be shared (:func:`cache.answers.shareable`, with
the answer cache on) is answered from the shared question alone
(:class:`tutor.generation.SharedQuestion`): no history, no hint level. Only
such an answer is looked up in and stored to the cache, so an answer that saw
one learner's conversation never reaches another learner.

:meth:`Tutor.take_over` finishes a stream whose owning pod died: it
rebuilds the partial answer from the journal and asks the model to continue
from it, appending to the same journal with the next ``seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

import msgspec
import structlog

from cache.answers import AnswerCache, CachedAnswer, shareable, split_for_delivery
from cache.popular import PopularQuestions
from core.auth import Principal
from core.errors import LLMError, SessionCourseMismatch, SessionForbidden
from core.ids import new_id
from core.metrics import Metrics
from core.retrieval import Passage, Retriever
from core.settings import Settings
from core.taskset import TaskSet
from realtime import protocol as p
from realtime.coalesce import Coalescer, LagSource, flush_limits
from realtime.hub import Subscriber
from realtime.journal import StreamMeta
from realtime.protocol import ErrorCode, FrameError, Mode
from realtime.streams import StreamBus
from store.store import MessageRecord, Store
from tutor.citations import answer_sources
from tutor.generation import (
    SharedQuestion,
    answer_prompt,
    generate,
    not_covered,
    not_covered_answer,
    shared_question,
)
from tutor.grading import grade
from tutor.guard import LeakCheck
from tutor.hinting import (
    Guard,
    GuardStop,
    HintPlan,
    load_problem,
    plan,
    problem_key,
    reference_answer,
)
from tutor.ladder import offline_rung_text, pages_phrase, rung_instructions
from tutor.llm import LLMProvider, Prompt

log = structlog.get_logger("livetutor.tutor")


class FlushLimits(TypedDict):
    """A delta's limits as :class:`realtime.coalesce.Coalescer` and ``flush_limits`` take them."""

    flush_s: float
    max_tokens: int
    flush_max_s: float
    flush_max_tokens: int


@dataclass(slots=True)
class _Stream:
    meta: StreamMeta
    seq: int = 0
    # Tokens from the model: the stored answer.
    parts: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    # Set when another pod owns the stream now: stop without storing or ending it.
    abandoned: bool = False
    taken_over: bool = False
    started: float = field(default_factory=time.monotonic)
    first_token: bool = False
    # May be served from, and stored in, the answer cache (see cache.answers).
    shareable: bool = False
    # Set when the answer cache is consulted: then the answer is generated from this alone.
    shared: SharedQuestion | None = None
    # How the ask is answered (hint rung, problem), and the seqs of the deltas that
    # replace sentences the guard kept back.
    plan: HintPlan = field(default_factory=lambda: HintPlan("explain"))
    withheld: list[int] = field(default_factory=list)

    @property
    def mode(self) -> Mode:
        return "hint" if self.meta.mode == "hint" else "explain"


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
        bus: StreamBus,
        pod: str,
        tasks: TaskSet,
        metrics: Metrics,
        answers: AnswerCache | None = None,
        popular: PopularQuestions | None = None,
        lag: LagSource | None = None,
    ) -> None:
        """``lag`` (the pod's event-loop lag) widens delta coalescing while the loop runs late."""
        self._settings = settings
        self._store = store
        self._retriever = retriever
        self._provider = provider
        self._fallback = fallback
        self._bus = bus
        self._pod = pod
        self._tasks = tasks
        self._metrics = metrics
        self._answers = answers
        self._popular = popular
        self._lag = lag
        flush = settings.tutor
        # The coalescer's limits: idle, and the widest while the loop lags.
        self._flush = FlushLimits(
            flush_s=flush.flush_ms / 1000,
            max_tokens=flush.flush_tokens,
            flush_max_s=flush.flush_max_ms / 1000,
            flush_max_tokens=flush.flush_max_tokens,
        )
        self._streams: dict[str, _Stream] = {}
        # Answers past their last token, storing and ending (out of ``_streams`` by then).
        self._finishing: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """Streams generating on this pod."""
        return len(self._streams)

    def flush_window_s(self) -> float:
        """How long a delta that starts now waits for more tokens (see realtime.coalesce)."""
        window_s, _ = flush_limits(self._lag.lag_s if self._lag is not None else 0.0, **self._flush)
        return window_s

    def owns(self, stream_id: str) -> bool:
        """True while this pod generates the stream."""
        return stream_id in self._streams

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
        # Stored in the same trip when its mode is known before the plan: a question
        # that is not about a problem (the store leaves an explain question asked under
        # a hint_only policy to the plan below).
        question = MessageRecord(
            id=new_id(),
            session_id=session_id,
            role="learner",
            text=frame.text,
            created_at=time.time(),
            mode=frame.mode,
        )
        try:
            opening = await self._store.open_ask(
                session_id,
                who.user,
                frame.course,
                self._settings.tutor.history_messages,
                question if frame.problem is None else None,
            )
        except SessionForbidden:
            raise FrameError(
                ErrorCode.SESSION_FORBIDDEN, "this session belongs to another user", frame.id
            ) from None
        except SessionCourseMismatch:
            raise FrameError(
                ErrorCode.SESSION_COURSE, "this session belongs to another course", frame.id
            ) from None
        session, history = opening.session, opening.history
        # The rung is counted when asked, so a quick follow-up already gets the next one.
        hint = await plan(
            self._store,
            user=who.user,
            course=frame.course,
            mode=frame.mode,
            problem_id=frame.problem,
            session=session,
            ref=frame.id,
            now=question.created_at,
            policy=opening.policy,
        )
        # Stored above only when its mode did not wait for the plan (same policy, same time).
        if not opening.stored:
            await self._store.add_message(msgspec.structs.replace(question, mode=hint.mode))
        meta = StreamMeta(
            stream=new_id(),
            session=session.id,
            user=who.user,
            course=frame.course,
            ask=frame.id,
            mode=hint.mode,
            question=frame.text,
            owner=self._pod,
            hint_level=hint.rung,
            problem=frame.problem or "",
            hint_only=hint.hint_only,
        )
        first = not history
        stream = self._streams[meta.stream] = _Stream(
            meta,
            # An answer about a problem depends on its key and the learner's progress.
            shareable=frame.problem is None
            and shareable(frame.text, hint.mode, first_in_session=first),
            plan=hint,
        )
        await self._bus.join(session.id, subscriber)
        await self._bus.open(meta, meta.start_frame())
        stream.task = self._tasks.spawn(self._run(stream, history), name=f"stream-{meta.stream}")
        return meta.stream, session.id

    def take_over(self, meta: StreamMeta, deltas: list[str]) -> None:
        """Finish an orphaned stream (its pod died) from the journal's ``deltas``."""
        if meta.stream in self._streams:
            return
        meta.owner = self._pod
        stream = self._streams[meta.stream] = _Stream(
            meta, seq=len(deltas), parts=list(deltas), taken_over=True
        )
        log.info("stream.taken_over", stream=meta.stream, session=meta.session, seq=stream.seq)
        stream.first_token = True  # the first token went out on the pod that died
        stream.task = self._tasks.spawn(self._resume_run(stream), name=f"takeover-{meta.stream}")

    async def _resume_run(self, stream: _Stream) -> None:
        meta = stream.meta
        problem = await self._store.get_problem(meta.course, meta.problem) if meta.problem else None
        stream.plan = HintPlan(
            stream.mode, rung=meta.hint_level, problem=problem, hint_only=meta.hint_only
        )
        history = await self._store.list_messages(
            stream.meta.session, self._settings.tutor.history_messages + 1
        )
        # The last learner message is the question itself.
        for i in range(len(history) - 1, -1, -1):
            if history[i].role == "learner" and history[i].text == stream.meta.question:
                history = history[:i]
                break
        await self._run(stream, history)

    async def cancel(self, who: Principal, stream_id: str, ref: str | None) -> None:
        """Stop a running stream of ``who``, here or on the pod that owns it."""
        stream = self._streams.get(stream_id)
        if stream is not None and stream.meta.user == who.user:
            self._stop(stream, "cancelled")
            return
        meta = None if stream is not None else await self._bus.meta(stream_id)
        if meta is None or meta.user != who.user or not await self._bus.request_cancel(meta):
            raise FrameError(ErrorCode.STREAM_UNKNOWN, "no running stream with this id", ref)

    async def attempt(self, who: Principal, frame: p.Attempt) -> dict[str, Any]:
        """Grade the learner's answer to a course problem; the ``feedback`` frame to send."""
        if not who.may_use(frame.course):
            raise FrameError(
                ErrorCode.COURSE_FORBIDDEN,
                f"your token does not grant course {frame.course!r}",
                frame.id,
            )
        problem = await load_problem(self._store, frame.course, frame.problem, frame.id)
        result = grade(problem_key(problem), frame.text)
        await self._store.record_attempt(who.user, frame.course, problem.id, result.correct)
        self._metrics.attempts.labels("correct" if result.correct else "wrong").inc()
        if result.correct:
            message = "Correct. Ask for an explanation to see the worked solution."
        elif problem.pages:
            message = f"Not yet. Re-read {pages_phrase(problem.pages)} of the course and try again."
        else:
            message = "Not yet. Ask for a hint, or try again."
        return p.feedback(frame.id, problem.id, correct=result.correct, message=message)

    def cancel_local(self, stream_id: str, reason: str = "cancelled") -> bool:
        """Stop a stream this pod generates; False if it runs elsewhere or not at all."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return False
        self._stop(stream, reason)
        return True

    def abandon(self, stream_id: str) -> None:
        """Stop generating a stream another pod now owns, without ending it."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.abandoned = True
            self._stop(stream, "abandoned")

    def stop_all(self, reason: str) -> None:
        """Stop every running stream (pod shutting down)."""
        for stream in list(self._streams.values()):
            self._stop(stream, reason)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no stream runs, at most ``timeout_s``; True if none is left."""
        tasks = {s.task for s in self._streams.values() if s.task is not None}
        if tasks or self._finishing:
            await asyncio.wait(tasks | self._finishing, timeout=timeout_s)
        return not self._streams and not self._finishing

    def _stop(self, stream: _Stream, reason: str) -> None:
        if stream.cancel_reason is None and stream.task is not None:
            stream.cancel_reason = reason
            stream.task.cancel()

    async def _run(self, stream: _Stream, history: list[MessageRecord]) -> None:
        meta = stream.meta
        with structlog.contextvars.bound_contextvars(stream=meta.stream, session=meta.session):
            started = time.monotonic()
            passages: list[Passage] = []
            hit: CachedAnswer | None = None
            model = self._provider.model
            fallback = False
            reason, message = "stop", None
            coalescer = Coalescer(
                lambda text: self._emit(stream, text),
                lag=self._lag,
                on_close=self._metrics.coalesced,
                first_at_once=True,
                **self._flush,
            )
            try:
                async with asyncio.timeout(self._settings.tutor.max_answer_s):
                    hit = await self._cached_answer(stream)
                    if hit is None:
                        passages, prompt = await self._prompt(stream, history)
                    if hit is not None:
                        model = hit.model
                        for piece in split_for_delivery(hit.text):
                            stream.parts.append(piece)
                            self._emit(stream, piece)
                    elif stream.mode == "explain" and not_covered(passages):
                        # Composed here, not by a model: there is nothing to explain from.
                        model = self._fallback.model
                        self._say(stream, not_covered_answer(meta.course, passages))
                    else:
                        try:
                            await self._answer(self._provider, prompt, stream, coalescer)
                        except LLMError as exc:
                            self._llm_outcome(self._provider, exc)
                            if stream.parts or not passages or self._provider is self._fallback:
                                raise
                            log.warning("llm.failed_fallback", error=type(exc).__name__)
                            self._metrics.llm_requests.labels(self._fallback.name, "fallback").inc()
                            self._bus.publish(
                                meta.session,
                                p.error(
                                    ErrorCode.LLM_UNAVAILABLE,
                                    f"{exc.description}; answering from the course text instead",
                                    meta.ask,
                                ),
                            )
                            model, fallback = self._fallback.model, True
                            await self._answer(self._fallback, prompt, stream, coalescer)
            except asyncio.CancelledError:
                coalescer.close()
                reason = stream.cancel_reason or "interrupted"
                await asyncio.shield(
                    self._finish(stream, reason, hit, passages, model, fallback, None, started)
                )
                raise
            except LLMError as exc:
                reason, message = "error", exc.description
                log.warning("llm.failed", error=type(exc).__name__)
                self._bus.publish(
                    meta.session, p.error(ErrorCode.LLM_UNAVAILABLE, message, meta.ask)
                )
            except TimeoutError:
                reason, message = "length", "the answer took longer than the server allows"
            except Exception:
                log.exception("stream.failed")
                reason, message = "error", "internal error while answering"
            coalescer.close()
            finish = self._finish(stream, reason, hit, passages, model, fallback, message, started)
            if hit is not None:
                # A cached answer went out whole in this step: its end follows in the same
                # round. ``_finish`` takes the stream out of ``_streams`` before it awaits
                # anything, so no cancel of the pipeline reaches it; wait_idle() waits for it.
                await finish
            else:
                # A streamed answer ends in a task of its own, a round later. Under paced
                # load whose answers started together, ending in this round kept their next
                # asks in step, and the waves of asks raised the lateness p99 of every other
                # stream (docs/benchmarks.md, section 3).
                await asyncio.shield(finish)

    async def _prompt(
        self, stream: _Stream, history: list[MessageRecord]
    ) -> tuple[list[Passage], Prompt]:
        """The passages and the prompt: a shared question's from it alone, others' in context."""
        meta, top_k = stream.meta, self._settings.tutor.top_k
        with self._metrics.retrieval_seconds.time():
            if stream.shared is not None:
                passages = await stream.shared.passages(self._retriever, top_k)
            else:
                # About a problem, the course is searched for the problem, not for the push
                # ("just tell me"): the hint then points at the pages that teach it.
                problem = stream.plan.problem
                query = problem.statement if problem is not None else meta.question
                passages = await self._retriever.retrieve(meta.course, query, top_k)
        if stream.shared is not None:
            # What the cache key holds and nothing of this learner's: the answer may be shared.
            return passages, stream.shared.prompt(passages)
        hint = stream.plan
        prompt = answer_prompt(
            meta.question,
            mode=stream.mode,
            course=meta.course,
            passages=passages,
            history=history,
            hint_level=max(hint.rung - 1, 0),
            continuation="".join(stream.parts),
            rung_rule=rung_instructions(hint.rung) if stream.mode == "hint" else "",
            problem=hint.problem.statement if hint.problem is not None else "",
        )
        return passages, prompt

    async def _cached_answer(self, stream: _Stream) -> CachedAnswer | None:
        """The cached answer to this stream's question, when it may be shared and is cached."""
        if not stream.shareable or stream.parts:
            return None
        meta = stream.meta
        if self._popular is not None:
            try:
                await self._popular.record(meta.course, meta.question, meta.user)
            except Exception as exc:
                # Counting feeds cache warming and predictions; never worth failing an ask.
                log.warning("popular.record_failed", error=type(exc).__name__)
        if self._answers is None:
            return None
        stream.shared = await shared_question(
            self._retriever, meta.course, stream.mode, self._provider.model, meta.question
        )
        return await self._answers.get(stream.shared.key)

    async def _remember_answer(
        self, stream: _Stream, sources: list[dict[str, Any]], model: str
    ) -> None:
        # Only an answer generated from the shared question alone (see _prompt) is stored.
        if self._answers is None or stream.shared is None or not stream.parts:
            return
        try:
            await self._answers.put(stream.shared.key, "".join(stream.parts), sources, model)
        except Exception:
            # The learner already has the answer; a cache that cannot take it is not their problem.
            log.exception("answer_cache.store_failed")

    def _say(self, stream: _Stream, text: str) -> None:
        """Deliver a composed answer (after what a taken-over stream already sent)."""
        sent = "".join(stream.parts)
        for piece in split_for_delivery(text[len(sent) :] if text.startswith(sent) else text):
            stream.parts.append(piece)
            self._emit(stream, piece)

    async def _answer(
        self, provider: LLMProvider, prompt: Prompt, stream: _Stream, coalescer: Coalescer
    ) -> None:
        """Generate the answer; a hint goes through the guard (the offline tutor's too)."""
        # Counted here and added to the metric once, not once per token.
        streamed = [0]

        def release(text: str) -> None:
            stream.parts.append(text)
            coalescer.add(text)

        guard = await self._guard(provider, prompt, stream, coalescer, release)
        if guard is None:

            def on_token(token: str) -> None:
                streamed[0] += 1
                release(token)

            try:
                await generate(provider, prompt, on_token)
            finally:
                self._metrics.tokens.inc(streamed[0])
        else:

            def guarded(token: str) -> None:
                streamed[0] += 1
                guard.feed(token)

            try:
                if provider.name == "offline":
                    hint = stream.plan
                    text = offline_rung_text(
                        hint.rung,
                        statement=hint.problem.statement if hint.problem else prompt.question,
                        passages=prompt.passages,
                        pages=hint.pages,
                    )
                    for piece in split_for_delivery(text):
                        guarded(piece)
                else:
                    await generate(provider, prompt, guarded)
                guard.close()
            except GuardStop:
                log.info("hint.guard_stopped", withheld=len(stream.withheld))
            finally:
                self._metrics.tokens.inc(streamed[0])
        self._metrics.llm_requests.labels(provider.name, "ok").inc()

    async def _guard(
        self,
        provider: LLMProvider,
        prompt: Prompt,
        stream: _Stream,
        coalescer: Coalescer,
        release: Callable[[str], None],
    ) -> Guard | None:
        """The guard of a hint: against the problem's key, else a private reference answer."""
        if stream.mode != "hint" or not self._settings.tutor.hint_guard:
            return None
        hint = stream.plan
        key = hint.key
        reference = ""
        if key is None and provider.name != "offline":
            reference = await reference_answer(provider, prompt)
        check = LeakCheck(key, reference=reference or None)
        if check.empty:
            # No key and no usable reference answer: the rung's rules in the prompt hold alone.
            return None
        withheld = self._metrics.hint_guard_withheld

        def replace(text: str) -> None:
            coalescer.flush()
            stream.parts.append(text)
            self._emit(stream, text)
            stream.withheld.append(stream.seq)

        return Guard(
            check,
            rung=hint.rung,
            pages=hint.pages or sorted({p.page for p in prompt.passages}),
            release=release,
            replace=replace,
            on_withheld=lambda reason: withheld.labels(reason).inc(),
        )

    def _llm_outcome(self, provider: LLMProvider, exc: LLMError) -> None:
        self._metrics.llm_requests.labels(provider.name, exc.outcome).inc()

    def _emit(self, stream: _Stream, text: str) -> None:
        if stream.abandoned:
            return
        if not stream.first_token:
            stream.first_token = True
            self._metrics.first_token_seconds.observe(time.monotonic() - stream.started)
        stream.seq += 1
        self._bus.delta(stream.meta, stream.seq, text)

    @contextlib.contextmanager
    def _finishing_now(self) -> Iterator[None]:
        """Hold the current task in ``_finishing`` while an answer stores and ends, so that
        wait_idle() (a draining pod) waits for it after it has left ``_streams``."""
        task = asyncio.current_task()
        if task is not None:
            self._finishing.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._finishing.discard(task)

    async def _finish(
        self,
        stream: _Stream,
        reason: str,
        hit: CachedAnswer | None,
        passages: list[Passage],
        model: str,
        fallback: bool,
        message: str | None,
        started: float,
    ) -> None:
        meta = stream.meta
        # Not cancellable from here on: the answer is complete or already stopped.
        self._streams.pop(meta.stream, None)
        with self._finishing_now():
            if stream.abandoned:
                log.info("stream.abandoned", reason="owned by another pod")
                return
            if hit is not None:
                sources = hit.sources
            else:
                sources = answer_sources(passages, "".join(stream.parts)) if stream.parts else []
            cached = hit is not None
            end = p.stream_end(
                meta.stream,
                stream.seq,
                reason,
                sources,
                cached=cached,
                model=model,
                fallback=fallback,
                message=message,
                taken_over=stream.taken_over,
                hint_level=meta.hint_level if stream.mode == "hint" else None,
                hint_only=meta.hint_only,
                withheld=stream.withheld,
            )
            try:
                # Stored before stream.end goes out, so a client reading the session
                # after stream.end finds the answer.
                await self._store.add_message(
                    MessageRecord(
                        id=new_id(),
                        session_id=meta.session,
                        role="tutor",
                        text="".join(stream.parts),
                        created_at=time.time(),
                        mode=meta.mode,
                        stream_id=meta.stream,
                        reason=reason,
                        sources=sources,
                        model=model,
                        cached=cached,
                    )
                )
            except Exception:
                log.exception("stream.store_failed")
            # Cached before stream.end goes out too, so a question asked right after it is a hit.
            if reason == "stop" and not (cached or fallback or stream.taken_over):
                await self._remember_answer(stream, sources, model)
            try:
                await self._bus.end(meta, end)
            except Exception:
                log.exception("stream.end_failed")
            self._metrics.answers.labels(reason).inc()
            self._metrics.answer_seconds.observe(time.monotonic() - stream.started)
            log.info(
                "stream.ended",
                reason=reason,
                deltas=stream.seq,
                model=model,
                cached=cached,
                taken_over=stream.taken_over,
                elapsed_ms=round((time.monotonic() - started) * 1000, 1),
            )
