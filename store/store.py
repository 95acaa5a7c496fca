"""Storage interface for users, sessions and messages, and the one place it is chosen.

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
    """Users, sessions and messages."""

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
