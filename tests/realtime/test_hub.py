"""In-process fan-out of session frames to subscribers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtime.hub import LocalHub

FRAME = {"type": "delta", "stream": "st-1", "seq": 1, "text": "Hi “there”"}


class Member:
    """A subscriber that records what it is delivered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[tuple[dict[str, Any], str]] = []

    def deliver(self, frame: dict[str, Any], text: str) -> None:
        self.got.append((frame, text))


class Leaver(Member):
    """A subscriber that leaves the session while being delivered to."""

    def __init__(self, name: str, hub: LocalHub, session: str) -> None:
        super().__init__(name)
        self.hub = hub
        self.session = session

    def deliver(self, frame: dict[str, Any], text: str) -> None:
        super().deliver(frame, text)
        self.hub.leave(self.session, self)


@pytest.fixture
def hub() -> LocalHub:
    return LocalHub()


def test_publish_reaches_every_member_once(hub: LocalHub) -> None:
    """Every member of the session gets the frame exactly once, as the same text."""
    members = [Member(f"m{i}") for i in range(3)]
    for member in members:
        hub.join("s-1", member)
    hub.join("s-1", members[0])  # joining twice still delivers once
    hub.publish("s-1", FRAME)
    for member in members:
        assert len(member.got) == 1
    texts = {member.got[0][1] for member in members}
    assert len(texts) == 1
    assert json.loads(texts.pop()) == FRAME


def test_publish_stays_in_its_session(hub: LocalHub) -> None:
    """Members of other sessions get nothing."""
    inside, outside = Member("in"), Member("out")
    hub.join("s-1", inside)
    hub.join("s-2", outside)
    hub.publish("s-1", FRAME)
    assert len(inside.got) == 1
    assert outside.got == []


def test_publish_to_unknown_session_is_a_no_op(hub: LocalHub) -> None:
    """Publishing where nobody listens neither fails nor creates the session."""
    hub.publish("s-404", FRAME)
    assert hub.members("s-404") == 0


def test_leave_stops_delivery(hub: LocalHub) -> None:
    """A member that left gets no further frames; the others still do."""
    stays, goes = Member("stays"), Member("goes")
    hub.join("s-1", stays)
    hub.join("s-1", goes)
    hub.leave("s-1", goes)
    hub.publish("s-1", FRAME)
    assert goes.got == []
    assert len(stays.got) == 1
    assert hub.members("s-1") == 1


def test_last_leave_forgets_the_session(hub: LocalHub) -> None:
    """When the last member leaves, the session is forgotten."""
    member = Member("m")
    hub.join("s-1", member)
    hub.leave("s-1", member)
    assert hub.members("s-1") == 0
    # members() reads 0 either way; only the map shows the session was dropped.
    assert "s-1" not in hub._sessions


def test_leave_unknown_is_a_no_op(hub: LocalHub) -> None:
    """Leaving a session one never joined does nothing."""
    member, other = Member("m"), Member("other")
    hub.join("s-1", member)
    hub.leave("s-1", other)
    hub.leave("s-404", member)
    assert hub.members("s-1") == 1


def test_member_leaving_during_delivery_does_not_break_others(hub: LocalHub) -> None:
    """A member that leaves inside deliver() does not stop delivery to the rest."""
    leaver = Leaver("leaver", hub, "s-1")
    others = [Member(f"m{i}") for i in range(4)]
    hub.join("s-1", leaver)
    for member in others:
        hub.join("s-1", member)
    hub.publish("s-1", FRAME)
    assert len(leaver.got) == 1
    for member in others:
        assert len(member.got) == 1
    assert hub.members("s-1") == len(others)


def test_every_member_leaving_during_delivery(hub: LocalHub) -> None:
    """Even if every member leaves inside deliver(), each gets the frame once."""
    leavers = [Leaver(f"l{i}", hub, "s-1") for i in range(5)]
    for member in leavers:
        hub.join("s-1", member)
    hub.publish("s-1", FRAME)
    for member in leavers:
        assert len(member.got) == 1
    assert hub.members("s-1") == 0
