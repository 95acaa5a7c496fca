"""What a hint may say, decided on the server: the plan of an ask and the guard on its stream.

An ask becomes a hint when the learner asks for one, or when the course policy
or the problem says ``hint_only`` and the learner has not solved the problem
yet (an ``explain`` ask is then answered as a hint, and ``stream.start`` and
``stream.end`` say ``hint_only``). :func:`plan` decides that, and the rung of
the ladder (:mod:`tutor.ladder`): per learner and problem, or per session for a
free question.

A hint's text reaches the learner through a :class:`Guard`: one sentence at a
time, each checked against the problem's key and accepted forms (or, for a free
question, a private reference answer the model wrote first and nobody sees).
A sentence that gives the answer away is replaced by a neutral text; after a
few, the model call is stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import LLMError
from realtime.protocol import ErrorCode, FrameError, Mode
from store.store import CoursePolicy, ProblemRecord, SessionRecord, Store
from tutor.grading import AnswerKey
from tutor.guard import GateEvent, LeakCheck, Release, SentenceGate
from tutor.ladder import MAX_RUNG, MAX_RUNG_WITHOUT_ATTEMPT, safe_replacement
from tutor.llm import LLMProvider, Prompt
from tutor.prompts import reference_prompt

# The private reference answer of a free question is short: a sentence, not a lecture.
REFERENCE_MAX_TOKENS = 60
# Sentences kept back before the model call is stopped.
MAX_WITHHELD = 2


class GuardStop(Exception):
    """The model kept giving the answer away: stop the call, keep what was released."""


@dataclass(frozen=True, slots=True)
class HintPlan:
    """How one ask is answered: its mode, and for a hint its rung and problem."""

    mode: Mode
    rung: int = 0
    problem: ProblemRecord | None = None
    # An explain ask answered as a hint by course or problem policy.
    hint_only: bool = False

    @property
    def key(self) -> AnswerKey | None:
        """The problem's answer key, when the hint is about a problem."""
        return problem_key(self.problem) if self.problem is not None else None

    @property
    def pages(self) -> list[int]:
        """The course pages that teach the problem."""
        return list(self.problem.pages) if self.problem is not None else []


def problem_key(problem: ProblemRecord) -> AnswerKey:
    """The answer key of a course problem: its answer and accepted forms."""
    return AnswerKey(problem.answer, tuple(problem.accept))


async def load_problem(store: Store, course: str, problem: str, ref: str | None) -> ProblemRecord:
    """The course's problem, or the ``problem_unknown`` error."""
    record = await store.get_problem(course, problem)
    if record is None:
        raise FrameError(ErrorCode.PROBLEM_UNKNOWN, f"no problem {problem!r} in this course", ref)
    return record


async def plan(
    store: Store,
    *,
    user: str,
    course: str,
    mode: Mode,
    problem_id: str | None,
    session: SessionRecord,
    ref: str | None,
    now: float | None = None,
    policy: CoursePolicy | None = None,
) -> HintPlan:
    """Decide the mode and the rung of one ask (advancing the learner's ladder for a hint).

    ``policy`` is the course's, when the caller has read it already.
    """
    problem = await load_problem(store, course, problem_id, ref) if problem_id else None
    if policy is None:
        policy = await store.get_policy(course)
    hint_only = policy.hint_only_at(time.time() if now is None else now) or (
        problem is not None and problem.policy == "hint_only"
    )
    if mode == "explain" and not hint_only:
        return HintPlan("explain", problem=problem)
    progress = await store.get_progress(user, course, problem.id) if problem is not None else None
    # A learner who solved the problem may read its worked solution.
    if mode == "explain" and progress is not None and progress.solved:
        return HintPlan("explain", problem=problem)
    # Rung 4 checks the learner's own attempt: without one, the ladder stops at rung 3.
    if problem is not None and progress is not None:
        top = MAX_RUNG if progress.attempts > 0 else MAX_RUNG_WITHOUT_ATTEMPT
        rung = await store.advance_rung(user, course, problem.id, top)
    else:
        rung = min(session.hint_level + 1, MAX_RUNG_WITHOUT_ATTEMPT)
        await store.set_hint_level(session.id, rung)
    return HintPlan("hint", rung=rung, problem=problem, hint_only=hint_only and mode == "explain")


async def reference_answer(provider: LLMProvider, prompt: Prompt) -> str:
    """The model's short private answer to a free question: what the guard keeps back.

    Never streamed, never stored. Empty when the model cannot give one (then only the
    ladder's rules in the prompt hold the hint).
    """
    private = reference_prompt(prompt, max_tokens=REFERENCE_MAX_TOKENS)
    parts: list[str] = []
    try:
        tokens = provider.stream(private)
        try:
            async for token in tokens:
                parts.append(token)
        finally:
            await tokens.aclose()
    except LLMError:
        return ""
    return "".join(parts).strip()


@dataclass(slots=True)
class Guard:
    """Releases a hint's text sentence by sentence; counts and marks what it keeps back."""

    check: LeakCheck
    rung: int
    pages: list[int]
    release: Callable[[str], None]
    replace: Callable[[str], None]
    on_withheld: Callable[[str], None]
    gate: SentenceGate = field(init=False)

    def __post_init__(self) -> None:
        replacement = safe_replacement(self.rung, self.pages)
        self.gate = SentenceGate(self.check, replacement=replacement, max_withheld=MAX_WITHHELD)

    def feed(self, text: str) -> None:
        """Take model text; release what is safe, replace what is not; GuardStop at the limit."""
        self._handle(self.gate.feed(text))

    def close(self) -> None:
        """Release or replace the last, unfinished sentence."""
        self._handle(self.gate.close())

    def _handle(self, events: list[GateEvent]) -> None:
        for event in events:
            if isinstance(event, Release):
                self.release(event.text)
            else:
                self.on_withheld(event.reason)
                self.replace(event.replacement_text)
        if self.gate.stopped:
            raise GuardStop()
