"""The tutor pipeline without a socket: a real bus, store, retriever and cache, a scripted model."""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cache.answers import AnswerCache, answer_key
from cache.two_tier import TwoTierCache
from core.auth import Principal
from core.errors import CircuitOpen, LLMError, LLMTimeout
from core.ids import new_id
from core.metrics import Metrics
from core.retrieval import Retriever
from core.settings import CacheSettings, Settings
from core.taskset import TaskSet
from knowledge.demo_course import DEMO_COURSE, demo_retriever
from knowledge.retriever import CourseRetriever
from realtime import protocol as p
from realtime.journal import StreamMeta
from realtime.protocol import ErrorCode, FrameError, Mode
from realtime.streams import MemoryBus
from store.sqlite import SQLiteStore
from store.store import MessageRecord
from tests.support import harbour
from tests.support.recorder import Frame, Recorder
from tutor.llm import Prompt
from tutor.llm_offline import OfflineProvider
from tutor.pipeline import Tutor

QUESTION = "What makes a deductive argument valid?"
TOKENS = ["Validity ", "is ", "about ", "form", "."]
POD = "pod-a"
ALICE = Principal("alice", "learner", frozenset({DEMO_COURSE}))
BOB = Principal("bob", "learner", frozenset({DEMO_COURSE}))


class ScriptedProvider:
    """An LLM provider that yields the given tokens and fails or stalls where told to."""

    def __init__(self, tokens: Sequence[str] = TOKENS) -> None:
        self.tokens = list(tokens)
        # Raise ``error`` instead of yielding ``tokens[fail_at]``.
        self.fail_at: int | None = None
        self.error: type[LLMError] = LLMTimeout
        # Wait for ever instead of yielding ``tokens[stall_at]``.
        self.stall_at: int | None = None
        self.prompts: list[Prompt] = []
        self.closed = 0

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def model(self) -> str:
        return "scripted-model"

    async def stream(self, prompt: Prompt) -> AsyncGenerator[str, None]:
        self.prompts.append(prompt)
        try:
            for i, token in enumerate(self.tokens):
                if i == self.fail_at:
                    raise self.error()
                if i == self.stall_at:
                    await asyncio.Event().wait()
                yield token
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        pass


@dataclass
class Rig:
    """A tutor on a memory bus and a SQLite store, and what it was built from."""

    tutor: Tutor
    bus: MemoryBus
    store: SQLiteStore
    provider: ScriptedProvider
    retriever: Retriever
    tasks: TaskSet
    answers: AnswerCache | None

    async def ask(
        self,
        who: Principal,
        text: str = QUESTION,
        *,
        mode: Mode = "explain",
        course: str = DEMO_COURSE,
        session: str | None = None,
        ref: str = "a1",
    ) -> tuple[str, str, Recorder]:
        """Ask as ``who`` from a fresh connection; its stream, its session and the connection."""
        recorder = Recorder()
        frame = p.Ask(id=ref, course=course, text=text, mode=mode, session=session)
        stream, session_id = await self.tutor.ask(who, frame, recorder)
        return stream, session_id, recorder

    async def settle(self) -> None:
        """Wait until every stream task has finished, its cache write included."""
        async with asyncio.timeout(5):
            while len(self.tasks):  # noqa: ASYNC110 - tasks leave the set from a callback
                await asyncio.sleep(0.01)

    async def messages(self, session: str) -> list[MessageRecord]:
        return await self.store.list_messages(session)


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[MakeRig]:
    """Makes tutors (one delta per token); stops their streams and closes their stores after."""
    made: list[Rig] = []

    async def make(
        *,
        answers: AnswerCache | None = None,
        retriever: Retriever | None = None,
        offline: bool = False,
        tutor: dict[str, Any] | None = None,
    ) -> Rig:
        """``offline``: the offline tutor is the provider (``rig.provider`` is then unused);
        ``tutor``: tutor settings over one delta per token."""
        settings = make_settings(tutor={"flush_tokens": 1, **(tutor or {})})
        store = SQLiteStore(str(tmp_path / f"tutor-{len(made)}.sqlite3"), settings.store)
        await store.open()
        for user in (ALICE, BOB):
            await store.ensure_user(user.user, user.role)
        provider, retriever = ScriptedProvider(), retriever or demo_retriever()
        bus, tasks = MemoryBus(), TaskSet()
        tutor = Tutor(
            settings,
            store=store,
            retriever=retriever,
            provider=OfflineProvider(settings.llm) if offline else provider,
            fallback=OfflineProvider(settings.llm),
            bus=bus,
            pod=POD,
            tasks=tasks,
            metrics=Metrics(client_types=p.CLIENT_TYPES, server_types=p.SERVER_TYPES),
            answers=answers,
        )
        made.append(rig := Rig(tutor, bus, store, provider, retriever, tasks, answers))
        return rig

    yield make
    for rig in made:
        rig.tutor.stop_all("interrupted")
        await rig.tasks.cancel_all(timeout_s=5.0)
        await rig.store.close()


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    """A tutor without an answer cache."""
    return await make_rig()


def deltas(recorder: Recorder) -> list[Frame]:
    return recorder.of_type("delta")


async def test_ask_streams_start_deltas_and_end_and_stores_both_messages(rig: Rig) -> None:
    """An ask streams stream.start, one delta per token with seq 1..n, stream.end with sources."""
    stream, session, recorder = await rig.ask(ALICE)
    end = await recorder.wait_for_end(stream)
    start = recorder.frames[0]
    assert (start["type"], start["stream"], start["ask"]) == ("stream.start", stream, "a1")
    assert (start["session"], start["course"], start["text"]) == (session, DEMO_COURSE, QUESTION)
    assert [(d["seq"], d["text"]) for d in deltas(recorder)] == list(enumerate(TOKENS, start=1))
    assert recorder.frames[-1] == end
    assert (end["reason"], end["seq"], end["model"]) == ("stop", len(TOKENS), "scripted-model")
    assert (end["cached"], end["fallback"], end["taken_over"]) == (False, False, False)
    passages = await rig.retriever.retrieve(DEMO_COURSE, QUESTION, 4)
    # The answer cites no passage by number: every passage given is listed, none as cited.
    assert (
        end["sources"]
        == [{**passage.source(), "n": n, "cited": False} for n, passage in enumerate(passages, 1)]
        != []
    )
    learner, tutor = await rig.messages(session)
    assert (learner.role, learner.text, learner.mode) == ("learner", QUESTION, "explain")
    assert (tutor.role, tutor.text, tutor.stream_id) == ("tutor", "".join(TOKENS), stream)
    assert (tutor.reason, tutor.sources, tutor.model) == ("stop", end["sources"], "scripted-model")
    assert rig.tutor.running == 0


async def test_waiting_for_idle_covers_an_answer_that_is_still_being_stored(rig: Rig) -> None:
    """Past its last token, an answer stores itself and sends stream.end; a draining pod's
    wait for idle waits for that too, so the end is not cut off by the close that follows."""
    stored = asyncio.Event()
    release = asyncio.Event()
    add_message = rig.store.add_message

    async def slow_add_message(message: MessageRecord) -> None:
        if message.role == "tutor":
            stored.set()
            await release.wait()
        await add_message(message)

    rig.store.add_message = slow_add_message  # type: ignore[method-assign]
    stream, _, recorder = await rig.ask(ALICE)
    await asyncio.wait_for(stored.wait(), 5.0)
    assert rig.tutor.running == 0  # no longer generating
    assert not await rig.tutor.wait_idle(0.2)
    assert recorder.of_type("stream.end") == []
    release.set()
    assert await rig.tutor.wait_idle(5.0)
    assert recorder.of_type("stream.end")[0]["stream"] == stream


async def test_the_first_token_goes_out_alone_whatever_the_window(make_rig: MakeRig) -> None:
    """However long the coalescing window, an answer's first token is its first delta, alone;
    the tokens after it coalesce as before."""
    window = {"flush_ms": 60_000, "flush_max_ms": 60_000}
    rig = await make_rig(tutor={**window, "flush_tokens": 64, "flush_max_tokens": 64})
    stream, _, recorder = await rig.ask(ALICE)
    await recorder.wait_for_end(stream)
    assert [d["text"] for d in deltas(recorder)] == [TOKENS[0], "".join(TOKENS[1:])]


async def test_ask_for_an_unknown_course_is_refused(rig: Rig) -> None:
    """A course the retriever does not know raises course_unknown, echoing the ask id."""
    admin = Principal("alice", "admin", frozenset())
    with pytest.raises(FrameError) as refused:
        await rig.ask(admin, course="no-such-course", ref="q7")
    assert (refused.value.code, refused.value.ref) == (ErrorCode.COURSE_UNKNOWN, "q7")
    assert rig.tutor.running == 0 and rig.provider.prompts == []


async def test_ask_for_a_course_the_token_lacks_is_refused(rig: Rig) -> None:
    """A course outside the principal's courses claim raises course_forbidden."""
    outsider = Principal("alice", "learner", frozenset({"another-course"}))
    with pytest.raises(FrameError) as refused:
        await rig.ask(outsider, ref="q8")
    assert (refused.value.code, refused.value.ref) == (ErrorCode.COURSE_FORBIDDEN, "q8")
    assert rig.tutor.running == 0 and rig.provider.prompts == []


async def test_ask_in_another_users_session_is_refused(rig: Rig) -> None:
    """Asking in a session that belongs to someone else raises session_forbidden."""
    stream, session, recorder = await rig.ask(ALICE)
    await recorder.wait_for_end(stream)
    with pytest.raises(FrameError) as refused:
        await rig.ask(BOB, session=session, ref="b1")
    assert (refused.value.code, refused.value.ref) == (ErrorCode.SESSION_FORBIDDEN, "b1")
    assert [m.role for m in await rig.messages(session)] == ["learner", "tutor"]


@pytest.mark.parametrize("error", [LLMTimeout, CircuitOpen])
async def test_llm_failure_before_any_token_falls_back_to_offline(
    rig: Rig, error: type[LLMError]
) -> None:
    """No token from the model: llm_unavailable, then the offline answer, marked fallback."""
    rig.provider.fail_at, rig.provider.error = 0, error
    stream, session, recorder = await rig.ask(ALICE)
    end = await recorder.wait_for_end(stream)
    kinds = [f["type"] for f in recorder.frames]
    assert kinds[:2] == ["stream.start", "error"] and kinds[-1] == "stream.end"
    warning = recorder.frames[1]
    assert (warning["code"], warning["ref"]) == (ErrorCode.LLM_UNAVAILABLE, "a1")
    assert error.description in warning["message"]
    text = "".join(d["text"] for d in deltas(recorder))
    assert text and not text.startswith(TOKENS[0])
    assert (end["reason"], end["fallback"], end["model"]) == ("stop", True, "offline")
    assert end["sources"] and end["seq"] == len(deltas(recorder))
    tutor = (await rig.messages(session))[-1]
    assert (tutor.text, tutor.model, tutor.reason) == (text, "offline", "stop")


async def test_llm_failure_after_tokens_ends_with_error(rig: Rig) -> None:
    """The model failing mid-answer ends the stream with reason error; no fallback is tried."""
    rig.provider.fail_at = 2
    stream, session, recorder = await rig.ask(ALICE)
    end = await recorder.wait_for_end(stream)
    assert [d["text"] for d in deltas(recorder)] == TOKENS[:2]
    assert (end["reason"], end["seq"], end["fallback"]) == ("error", 2, False)
    assert end["message"] == LLMTimeout.description
    assert end["model"] == "scripted-model"
    errors = recorder.of_type("error")
    assert [(e["code"], e["ref"]) for e in errors] == [(ErrorCode.LLM_UNAVAILABLE, "a1")]
    assert len(rig.provider.prompts) == 1
    tutor = (await rig.messages(session))[-1]
    assert (tutor.text, tutor.reason) == ("".join(TOKENS[:2]), "error")


async def test_cancel_stops_the_stream(rig: Rig) -> None:
    """cancel from the asker ends the stream with reason cancelled and closes the model stream."""
    rig.provider.stall_at = 1
    stream, session, recorder = await rig.ask(ALICE)
    await recorder.wait_for(lambda f: f["type"] == "delta")
    await rig.tutor.cancel(ALICE, stream, "c1")
    end = await recorder.wait_for_end(stream)
    assert (end["reason"], end["seq"]) == ("cancelled", 1)
    assert rig.tutor.running == 0
    await rig.settle()
    assert rig.provider.closed == 1
    tutor = (await rig.messages(session))[-1]
    assert (tutor.text, tutor.reason) == (TOKENS[0], "cancelled")


async def test_cancel_of_another_users_stream_is_refused(rig: Rig) -> None:
    """Bob cannot cancel Alice's stream: stream_unknown, and her answer goes on."""
    rig.provider.stall_at = 1
    stream, _, recorder = await rig.ask(ALICE)
    await recorder.wait_for(lambda f: f["type"] == "delta")
    with pytest.raises(FrameError) as refused:
        await rig.tutor.cancel(BOB, stream, "c1")
    assert (refused.value.code, refused.value.ref) == (ErrorCode.STREAM_UNKNOWN, "c1")
    assert rig.tutor.owns(stream)


async def test_second_learner_gets_the_cached_answer(make_rig: MakeRig) -> None:
    """The same question from another learner is answered from the cache, cached: true."""
    rig = await make_rig(answers=AnswerCache(TwoTierCache(CacheSettings())))
    first_stream, _, first = await rig.ask(ALICE)
    first_end = await first.wait_for_end(first_stream)
    await rig.settle()
    stream, session, recorder = await rig.ask(BOB, "  what makes a DEDUCTIVE argument valid ")
    end = await recorder.wait_for_end(stream)
    assert first_end["cached"] is False and end["cached"] is True
    assert len(rig.provider.prompts) == 1
    assert "".join(d["text"] for d in deltas(recorder)) == "".join(TOKENS)
    assert [d["seq"] for d in deltas(recorder)] == list(range(1, end["seq"] + 1))
    assert (end["reason"], end["model"], end["sources"]) == (
        "stop",
        "scripted-model",
        first_end["sources"],
    )
    tutor = (await rig.messages(session))[-1]
    assert (tutor.cached, tutor.text) == (True, "".join(TOKENS))


async def test_hint_is_never_served_from_the_cache(make_rig: MakeRig) -> None:
    """A hint is generated afresh even with an answer cached under its own key."""
    answers = AnswerCache(TwoTierCache(CacheSettings()))
    rig = await make_rig(answers=answers)
    version = await rig.retriever.index_version(DEMO_COURSE)
    key = answer_key(DEMO_COURSE, version, "hint", rig.provider.model, QUESTION)
    assert await answers.put(key, "A cached hint.", [], rig.provider.model)
    for who in (ALICE, BOB):
        stream, _, recorder = await rig.ask(who, mode="hint")
        end = await recorder.wait_for_end(stream)
        await rig.settle()
        assert end["cached"] is False
        assert "cached hint" not in "".join(d["text"] for d in deltas(recorder))
    # Each hint: the model's private reference answer (output capped), then the hint itself.
    hints = [prompt for prompt in rig.provider.prompts if prompt.max_tokens is None]
    assert [prompt.mode for prompt in hints] == ["hint", "hint"]


async def test_take_over_continues_from_the_journal(rig: Rig) -> None:
    """A stream taken over continues after the journal's deltas: next seq, taken_over: true."""
    session = new_id()
    await rig.store.open_session(session, ALICE.user, DEMO_COURSE)
    await rig.store.add_message(
        MessageRecord(
            id=new_id(), session_id=session, role="learner", text=QUESTION, created_at=0.0
        )
    )
    meta = StreamMeta(
        stream=new_id(),
        session=session,
        user=ALICE.user,
        course=DEMO_COURSE,
        ask="a1",
        question=QUESTION,
        owner="pod-that-died",
    )
    recorder = Recorder()
    await rig.bus.join(session, recorder)
    await rig.bus.open(meta, p.stream_start(meta.stream, "a1", session, DEMO_COURSE, "explain"))
    sent = TOKENS[:2]
    for seq, text in enumerate(sent, start=1):
        rig.bus.delta(meta, seq, text)
    rig.provider.tokens = TOKENS[2:]

    rig.tutor.take_over(meta, list(sent))
    end = await recorder.wait_for_end(meta.stream)

    assert rig.provider.prompts[0].continuation == "".join(sent)
    assert [d["seq"] for d in deltas(recorder)] == [1, 2, 3, 4, 5]
    assert [d["text"] for d in deltas(recorder)[2:]] == TOKENS[2:]
    assert (end["reason"], end["seq"], end["taken_over"]) == ("stop", len(TOKENS), True)
    assert meta.owner == POD
    journal = await rig.bus.read(meta.stream, 0)
    assert "".join(text for _, text in journal.deltas) == "".join(TOKENS)
    tutor = (await rig.messages(session))[-1]
    assert (tutor.role, tutor.text, tutor.stream_id) == ("tutor", "".join(TOKENS), meta.stream)


@pytest.fixture
def harbour_retriever(tmp_path: Path) -> Iterator[CourseRetriever]:
    """A real course retriever over a three-page course, MiniLM and lexical."""
    retriever = harbour.harbour_retriever(tmp_path / "harbour")
    yield retriever
    retriever.close()
    retriever.kb.close()


SAILOR = Principal("alice", "learner", frozenset({harbour.COURSE}))
OFF_COURSE = "how many calories are in a banana"


@pytest.mark.parametrize("offline", [False, True], ids=["model", "offline tutor"])
async def test_a_question_the_course_does_not_cover_is_answered_as_such(
    make_rig: MakeRig, harbour_retriever: CourseRetriever, offline: bool
) -> None:
    """Off the course, the answer says so and names the nearest pages; no model is asked."""
    rig = await make_rig(retriever=harbour_retriever, offline=offline)
    stream, _, recorder = await rig.ask(SAILOR, OFF_COURSE, course=harbour.COURSE)
    end = await recorder.wait_for_end(stream)
    text = "".join(d["text"] for d in deltas(recorder))
    assert "does not cover this question" in text
    nearest = await harbour_retriever.retrieve(harbour.COURSE, OFF_COURSE, 4)
    for passage in nearest:
        assert f"p. {passage.page}, “{passage.heading}” ({harbour.DOCUMENT})" in text
    assert end["reason"] == "stop"
    assert [source["page"] for source in end["sources"]] == [p.page for p in nearest]
    assert rig.provider.prompts == []


async def test_a_question_the_course_covers_is_explained_by_the_model(
    make_rig: MakeRig, harbour_retriever: CourseRetriever
) -> None:
    """On the course, the model answers from the passages as before."""
    rig = await make_rig(retriever=harbour_retriever)
    question = "which knot makes a loop that won't slip?"
    stream, _, recorder = await rig.ask(SAILOR, question, course=harbour.COURSE)
    await recorder.wait_for_end(stream)
    assert "".join(d["text"] for d in deltas(recorder)) == "".join(TOKENS)
    assert rig.provider.prompts[0].passages[0].heading == "Knots and Ropes"


async def test_a_hint_off_the_course_still_goes_to_the_hint_ladder(
    make_rig: MakeRig, harbour_retriever: CourseRetriever
) -> None:
    """Only explain mode answers "not covered"; hint mode keeps its own path."""
    rig = await make_rig(retriever=harbour_retriever)
    stream, _, recorder = await rig.ask(SAILOR, OFF_COURSE, course=harbour.COURSE, mode="hint")
    await recorder.wait_for_end(stream)
    # The private reference answer (output capped), then the hint itself.
    assert [prompt.max_tokens is None for prompt in rig.provider.prompts] == [False, True]
