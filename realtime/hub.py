"""In-process fan-out: every frame of a session reaches every connection in it.

A :class:`Subscriber` is anything with ``deliver``: in the server, a
connection's bounded outbound queue. Each frame is encoded once and the same
text goes to every subscriber.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from realtime.protocol import encode


class Subscriber(Protocol):
    """Receives the frames of the sessions it joined."""

    def deliver(self, frame: dict[str, Any], text: str) -> None:
        """Queue ``text`` (the encoded ``frame``) for sending; never blocks."""
        ...

    def following(self) -> set[str]:
        """Streams this subscriber has seen start or resumed and not yet seen end."""
        ...


class LocalHub:
    """Session id to the subscribers in this process."""

    def __init__(self) -> None:
        # Per session, its subscribers and when each joined (wall clock).
        self._sessions: dict[str, dict[Subscriber, float]] = {}

    def join(self, session: str, subscriber: Subscriber) -> None:
        """Start delivering the session's frames to ``subscriber``."""
        self._sessions.setdefault(session, {}).setdefault(subscriber, time.time())

    def leave(self, session: str, subscriber: Subscriber) -> None:
        """Stop delivering; forgets the session when nobody is left."""
        members = self._sessions.get(session)
        if members is None:
            return
        members.pop(subscriber, None)
        if not members:
            del self._sessions[session]

    def members(self, session: str) -> int:
        """How many subscribers the session has here."""
        return len(self._sessions.get(session, ()))

    def subscribers(self, session: str) -> list[Subscriber]:
        """The session's subscribers here."""
        return list(self._sessions.get(session, ()))

    def joined_at(self, session: str, subscriber: Subscriber) -> float | None:
        """When ``subscriber`` joined ``session`` (``time.time()``), None if it is not in it."""
        return self._sessions.get(session, {}).get(subscriber)

    def sessions(self) -> list[tuple[str, list[Subscriber]]]:
        """Every session with subscribers here, and its subscribers."""
        return [(session, list(members)) for session, members in self._sessions.items()]

    def publish(self, session: str, frame: dict[str, Any]) -> None:
        """Deliver ``frame`` to every subscriber of ``session``."""
        if session in self._sessions:
            self.publish_text(session, frame, encode(frame))

    def publish_text(self, session: str, frame: dict[str, Any], text: str) -> None:
        """Deliver an already encoded ``frame`` to every subscriber of ``session``."""
        members = self._sessions.get(session)
        if not members:
            return
        # Copy: a delivery may drop a slow subscriber, which leaves the session.
        for member in tuple(members):
            member.deliver(frame, text)
