"""Storage interface for users, sessions, messages and course problems.

Two implementations share this interface and its tests:
:mod:`store.sqlite` (embedded default, a file in the data directory)
and :mod:`store.postgres` (asyncpg pool, ``DATABASE_URL``, optional
``READ_DATABASE_URL`` for read-only queries). Both apply the versioned SQL
migrations in ``store/migrations/<dialect>/`` when opened.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

MessageRole = Literal["learner", "tutor"]
# How a problem, or a whole course for a while, may be tutored: ``open`` lets an
# ``explain`` ask be answered in full; ``hint_only`` answers it with hints.
TutoringPolicy = Literal["open", "hint_only"]


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A tutoring session: one learner, one course."""

    id: str
    user_id: str
    course: str
    created_at: float
    updated_at: float
    hint_level: int = 0
    title: str = ""


class MessageRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A learner question or a tutor answer."""

    id: str
    session_id: str
    role: MessageRole
    text: str
    created_at: float
    mode: str = ""
    stream_id: str = ""
    # Tutor answers: why the stream ended (stop, cancelled, error, interrupted).
    reason: str = ""
    sources: list[dict[str, Any]] = []
    model: str = ""
    cached: bool = False


class ProblemRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An instructor's problem of a course, with its answer key.

    ``answer`` and ``accept`` (other accepted forms of the answer) are for the
    tutor and the course's instructors only, never shown to learners.
    ``pages`` are the 1-based pages of the course's documents that teach it.
    """

    course: str
    id: str
    statement: str
    answer: str
    accept: list[str] = []
    policy: TutoringPolicy = "open"
    pages: list[int] = []
    updated_at: float
    updated_by: str


class CoursePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How a course is tutored; ``hint_only`` for a window of time (an exam, say).

    Times are epoch seconds. A window with only ``hint_only_from`` holds from
    then on; one with only ``hint_only_until`` holds until then; none, always.
    """

    course: str
    mode: TutoringPolicy = "open"
    hint_only_from: float | None = None
    hint_only_until: float | None = None

    def hint_only_at(self, now: float) -> bool:
        """True when the course is ``hint_only`` at ``now``: in the window, ``until`` excluded."""
        if self.mode != "hint_only":
            return False
        if self.hint_only_from is not None and now < self.hint_only_from:
            return False
        return self.hint_only_until is None or now < self.hint_only_until


class AskOpening(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`Store.open_ask` read and did for one ask."""

    session: SessionRecord
    # The session's last messages before the question, oldest first, without their
    # sources (a prompt does not use them).
    history: list[MessageRecord]
    policy: CoursePolicy
    # Whether the question was stored (see Store.open_ask).
    stored: bool


def storable(message: MessageRecord, policy: CoursePolicy) -> bool:
    """False for an ``explain`` question asked while the course is ``hint_only`` (see open_ask)."""
    return not (message.mode == "explain" and policy.hint_only_at(message.created_at))


class ProblemProgress(msgspec.Struct, frozen=True, kw_only=True):
    """One learner's way through one problem: hints given (``rung``), attempts, solved."""

    user_id: str
    course: str
    problem: str
    # 0: no hint given yet.
    rung: int = 0
    attempts: int = 0
    solved: bool = False
    # 0.0 for a learner who has not started the problem.
    updated_at: float = 0.0


TITLE_CHARS = 80


def session_title(text: str) -> str:
    """A session's title: its first question, white space collapsed, cut to 80 characters."""
    return " ".join(text.split())[:TITLE_CHARS]


def session_from_row(row: Any) -> SessionRecord:
    """A session from a database row with named columns (sqlite3.Row, asyncpg.Record)."""
    return SessionRecord(
        id=row["id"],
        user_id=row["user_id"],
        course=row["course"],
        title=row["title"],
        hint_level=row["hint_level"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def message_from_row(row: Any, sources: list[dict[str, Any]]) -> MessageRecord:
    """A message from a database row; ``sources`` already decoded by the dialect."""
    return MessageRecord(
        id=row["id"],
        session_id=row["session_id"],
        role=row["role"],
        text=row["text"],
        mode=row["mode"],
        stream_id=row["stream_id"],
        reason=row["reason"],
        sources=sources,
        model=row["model"],
        cached=bool(row["cached"]),
        created_at=row["created_at"],
    )


def problem_from_row(row: Any, accept: list[str], pages: list[int]) -> ProblemRecord:
    """A problem from a database row; ``accept`` and ``pages`` already decoded by the dialect."""
    return ProblemRecord(
        course=row["course"],
        id=row["id"],
        statement=row["statement"],
        answer=row["answer"],
        accept=accept,
        policy=row["policy"],
        pages=pages,
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def policy_from_row(row: Any) -> CoursePolicy:
    """A course policy from a database row."""
    return CoursePolicy(
        course=row["course"],
        mode=row["mode"],
        hint_only_from=row["hint_only_from"],
        hint_only_until=row["hint_only_until"],
    )


def progress_from_row(row: Any) -> ProblemProgress:
    """A learner's progress from a database row."""
    return ProblemProgress(
        user_id=row["user_id"],
        course=row["course"],
        problem=row["problem"],
        rung=row["rung"],
        attempts=row["attempts"],
        solved=bool(row["solved"]),
        updated_at=row["updated_at"],
    )


def message_view(m: MessageRecord) -> dict[str, Any]:
    """A message as clients see it (``session`` frames and the HTTP API)."""
    return {
        "id": m.id,
        "role": m.role,
        "text": m.text,
        "created_at": m.created_at,
        "mode": m.mode or None,
        "stream": m.stream_id or None,
        "reason": m.reason or None,
        "sources": m.sources,
        "model": m.model or None,
        "cached": m.cached,
    }


class Store(Protocol):
    """Users, sessions and messages; course problems, policies and learners' progress."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def ping(self) -> None:
        """Raise :class:`core.errors.StoreError` unless the database answers."""
        ...

    async def ensure_user(self, user_id: str, role: str) -> None:
        """Create the user on first sight; refresh its role and last-seen time."""
        ...

    async def open_session(self, session_id: str, user_id: str, course: str) -> SessionRecord:
        """Return the session, creating it for ``user_id`` if it does not exist.

        Raises :class:`SessionForbidden` if another user owns it and
        :class:`SessionCourseMismatch` if it belongs to another course.
        """
        ...

    async def open_ask(
        self,
        session_id: str,
        user_id: str,
        course: str,
        history_limit: int,
        message: MessageRecord | None = None,
    ) -> AskOpening:
        """What an ask needs of the store, in one trip.

        Opens the session as :meth:`open_session` does (raising the same errors),
        reads its last ``history_limit`` messages and the course's policy, and
        stores ``message`` (the learner's question), when one is given, unless it
        is an ``explain`` question while the policy is ``hint_only`` at its
        ``created_at``: such a question is answered as a hint, and the caller
        stores it with that mode. The history does not hold the question.
        """
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, or None."""
        ...

    async def list_sessions(self, user_id: str, limit: int = 50) -> list[SessionRecord]:
        """The user's sessions, most recently updated first."""
        ...

    async def add_message(self, message: MessageRecord) -> None:
        """Store a message and touch its session's ``updated_at``."""
        ...

    async def list_messages(
        self, session_id: str, limit: int = 200, before: str | None = None
    ) -> list[MessageRecord]:
        """The session's last ``limit`` messages, oldest first.

        With ``before`` (a message id of the session), the last ``limit`` messages
        that came before it: the next page when scrolling back. An id that is not
        one of the session's messages gives an empty list.
        """
        ...

    async def set_hint_level(self, session_id: str, level: int) -> None:
        """Remember how far hint mode has gone in this session."""
        ...

    async def put_problem(self, record: ProblemRecord) -> bool:
        """Create or replace the problem ``(record.course, record.id)``; True when created."""
        ...

    async def get_problem(self, course: str, problem_id: str) -> ProblemRecord | None:
        """The problem, or None."""
        ...

    async def list_problems(self, course: str) -> list[ProblemRecord]:
        """The course's problems, by id."""
        ...

    async def count_problems(self, course: str) -> int:
        """How many problems the course has."""
        ...

    async def delete_problem(self, course: str, problem_id: str) -> bool:
        """Delete the problem and every learner's progress on it; False when there was none."""
        ...

    async def get_policy(self, course: str) -> CoursePolicy:
        """The course's policy; ``open`` with no window when none was set."""
        ...

    async def put_policy(self, policy: CoursePolicy) -> None:
        """Set the course's policy, replacing the one before."""
        ...

    async def get_progress(self, user_id: str, course: str, problem_id: str) -> ProblemProgress:
        """The learner's progress on the problem; all zeros when they have not started it."""
        ...

    async def advance_rung(self, user_id: str, course: str, problem_id: str, max_rung: int) -> int:
        """Atomically raise the learner's hint rung by one, to at most ``max_rung``; the new rung.

        Safe with several pods at once: concurrent calls each count. Raises
        :class:`ValueError` for a negative ``max_rung`` and :class:`core.errors.StoreError`
        when the problem does not exist.
        """
        ...

    async def record_attempt(
        self, user_id: str, course: str, problem_id: str, correct: bool
    ) -> ProblemProgress:
        """Atomically count an attempt, marking the problem solved when it is correct.

        A solved problem stays solved. Raises :class:`core.errors.StoreError` when
        the problem does not exist.
        """
        ...
