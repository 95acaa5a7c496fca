"""The in-process stream journal that resume replays from."""

from __future__ import annotations

import time
from typing import Any

import pytest

from realtime.journal import MemoryJournal, StreamLog, StreamMeta


def log(stream: str = "st-1", session: str = "s-1") -> StreamMeta:
    """The meta of a fresh stream."""
    return StreamMeta(stream=stream, session=session, user="alice", course="demo", ask="q1")


def end_frame(stream: str = "st-1", seq: int = 3) -> dict[str, Any]:
    """A stream.end frame for ``stream``."""
    return {"type": "stream.end", "stream": stream, "seq": seq, "reason": "stop"}


def found(journal: MemoryJournal, stream: str) -> StreamLog:
    """The journal's log of ``stream``, which must be there."""
    entry = journal.get(stream)
    assert entry is not None
    return entry


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


def test_append_returns_seq_from_one(journal: MemoryJournal) -> None:
    """Each appended delta gets the next seq, starting at 1."""
    journal.open(log())
    assert [journal.append("st-1", t) for t in ["a", "b", "c"]] == [1, 2, 3]
    assert found(journal, "st-1").seq == 3


def test_read_after_numbers_deltas(journal: MemoryJournal) -> None:
    """read(n).frames() gives the deltas with seq > n, numbered and in order."""
    journal.open(log())
    for text in ["a", "b", "c"]:
        journal.append("st-1", text)
    frames = found(journal, "st-1").read(1).frames("st-1")
    assert frames == [
        {"type": "delta", "stream": "st-1", "seq": 2, "text": "b"},
        {"type": "delta", "stream": "st-1", "seq": 3, "text": "c"},
    ]


def test_read_after_zero_is_everything(journal: MemoryJournal) -> None:
    """read(0).frames() replays every delta of a running stream and no end."""
    journal.open(log())
    journal.append("st-1", "a")
    journal.append("st-1", "b")
    frames = found(journal, "st-1").read(0).frames("st-1")
    assert [(f["seq"], f["text"]) for f in frames] == [(1, "a"), (2, "b")]


def test_read_after_last_seq_of_running_stream_is_empty(journal: MemoryJournal) -> None:
    """A client that has every delta of a running stream gets nothing to replay."""
    journal.open(log())
    journal.append("st-1", "a")
    assert found(journal, "st-1").read(1).frames("st-1") == []


def test_read_after_of_ended_stream_include_end(journal: MemoryJournal) -> None:
    """After the end, replay finishes with the stream.end frame."""
    journal.open(log())
    journal.append("st-1", "a")
    journal.append("st-1", "b")
    end = end_frame(seq=2)
    journal.finish("st-1", end)
    frames = found(journal, "st-1").read(1).frames("st-1")
    assert [f["type"] for f in frames] == ["delta", "stream.end"]
    assert frames[-1] == end


def test_read_after_everything_seen_is_just_the_end(journal: MemoryJournal) -> None:
    """A client that saw every delta of an ended stream gets only stream.end."""
    journal.open(log())
    journal.append("st-1", "a")
    journal.finish("st-1", end_frame(seq=1))
    assert found(journal, "st-1").read(1).frames("st-1") == [end_frame(seq=1)]


def test_finish_moves_to_ended(journal: MemoryJournal) -> None:
    """A finished stream is no longer running but get still returns it with its end."""
    journal.open(log())
    journal.append("st-1", "a")
    journal.finish("st-1", end_frame(seq=1))
    assert journal.running() == []
    ended = journal.get("st-1")
    assert ended is not None
    assert ended.end == end_frame(seq=1)
    assert ended.deltas == ["a"]


def test_get_unknown_stream_is_none(journal: MemoryJournal) -> None:
    """An id the journal never saw gives None."""
    assert journal.get("st-404") is None


def test_running_filters_by_session(journal: MemoryJournal) -> None:
    """running(session) lists only that session's running streams; running() lists all."""
    journal.open(log("st-1", "s-1"))
    journal.open(log("st-2", "s-2"))
    journal.open(log("st-3", "s-1"))
    assert sorted(x.stream for x in journal.running("s-1")) == ["st-1", "st-3"]
    assert [x.stream for x in journal.running("s-2")] == ["st-2"]
    assert journal.running("s-3") == []
    assert sorted(x.stream for x in journal.running()) == ["st-1", "st-2", "st-3"]


def test_ended_streams_expire() -> None:
    """An ended stream is forgotten once ended_ttl_s has passed."""
    journal = MemoryJournal(ended_ttl_s=0.01)
    journal.open(log())
    journal.finish("st-1", end_frame(seq=0))
    # MemoryJournal takes no clock, so let real time pass the tiny TTL.
    time.sleep(0.05)
    assert journal.get("st-1") is None


def test_running_streams_do_not_expire() -> None:
    """ended_ttl_s applies only to ended streams, not running ones."""
    journal = MemoryJournal(ended_ttl_s=0.01)
    journal.open(log())
    time.sleep(0.05)
    assert journal.get("st-1") is not None


def test_a_replayed_start_carries_what_the_hint_ask_carried() -> None:
    """A hint stream's stream.start, rebuilt from its stored meta (replays, catch-up,
    takeover), names its rung, problem and policy, as the start sent when it opened did."""
    meta = StreamMeta(
        stream="st-1",
        session="s-1",
        user="alice",
        course="demo",
        ask="q1",
        mode="hint",
        question="Is this argument valid?",
        hint_level=3,
        problem="book-snow",
        hint_only=True,
    )
    start = StreamMeta.from_fields(meta.to_fields()).start_frame()
    assert start == {
        "type": "stream.start",
        "stream": "st-1",
        "ask": "q1",
        "session": "s-1",
        "course": "demo",
        "mode": "hint",
        "text": "Is this argument valid?",
        "hint_level": 3,
        "problem": "book-snow",
        "hint_only": True,
    }
    explain = StreamMeta(stream="st-2", session="s-1", user="alice", course="demo", ask="q2")
    assert "hint_level" not in explain.start_frame()
    assert "problem" not in explain.start_frame()
