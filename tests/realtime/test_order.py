"""Per-connection stream order: once each, in seq order, gaps held and reported."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.order import StreamOrder, StreamOrderOverflow


def delta(seq: int, stream: str = "s") -> dict[str, Any]:
    return {"type": "delta", "stream": stream, "seq": seq, "text": f"t{seq} "}


def end(seq: int, stream: str = "s") -> dict[str, Any]:
    return {"type": "stream.end", "stream": stream, "seq": seq, "reason": "stop"}


def start(stream: str = "s") -> dict[str, Any]:
    return {"type": "stream.start", "stream": stream}


def feed(order: StreamOrder, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for frame in frames:
        ready, _ = order.accept(frame, "")
        out.extend(item for item, _ in ready)
    return out


def test_in_order_frames_pass_through() -> None:
    """start, deltas 1..3 and end come out as they went in."""
    frames = [start(), delta(1), delta(2), delta(3), end(3)]
    assert feed(StreamOrder(10), frames) == frames


def test_duplicates_are_dropped() -> None:
    """A repeated start, delta or end is delivered once."""
    frames = [start(), delta(1), start(), delta(1), delta(2), end(2), end(2), delta(2)]
    assert feed(StreamOrder(10), frames) == [start(), delta(1), delta(2), end(2)]


def test_early_delta_waits_for_the_gap_and_reports_it() -> None:
    """A delta ahead of a gap is held, the gap reported, and released once filled."""
    order = StreamOrder(10)
    feed(order, [start(), delta(1)])
    ready, gap = order.accept(delta(3), "")
    assert (ready, gap) == ([], True)
    assert order.waiting("s")
    ready, gap = order.accept(delta(2), "")
    assert [item for item, _ in ready] == [delta(2), delta(3)]
    assert not gap and not order.waiting("s")


def test_end_waits_for_its_last_delta() -> None:
    """stream.end naming seq 3 is held until delta 3 has gone out."""
    order = StreamOrder(10)
    out = feed(order, [start(), delta(1), end(3), delta(2), delta(3)])
    assert out == [start(), delta(1), delta(2), delta(3), end(3)]
    assert order.ended("s")


def test_resume_replays_from_after() -> None:
    """resume(after) makes deltas after it deliverable again, even if seen before."""
    order = StreamOrder(10)
    feed(order, [start(), delta(1), delta(2), delta(3)])
    order.resume("s", 1)
    assert feed(order, [delta(2), delta(3)]) == [delta(2), delta(3)]


def test_other_frames_pass_untouched() -> None:
    """Frames that are not stream frames are never held or dropped."""
    pong = {"type": "pong", "ref": "x"}
    assert feed(StreamOrder(1), [pong, pong]) == [pong, pong]


def test_too_many_waiting_frames_overflow() -> None:
    """More early frames than allowed behind one gap raise an overflow."""
    order = StreamOrder(2)
    feed(order, [start(), delta(1), delta(3), delta(4)])
    with pytest.raises(StreamOrderOverflow):
        order.accept(delta(5), "")


@given(st.integers(1, 30), st.randoms(use_true_random=False), st.integers(0, 30))
def test_any_arrival_order_gives_each_frame_once_in_order(n: int, rnd: Any, dups: int) -> None:
    """Whatever the order and repeats, deltas come out 1..n once each, then the end."""
    frames = [delta(i) for i in range(1, n + 1)] + [end(n)]
    arrivals = frames + [rnd.choice(frames) for _ in range(dups)]
    rnd.shuffle(arrivals)
    order = StreamOrder(1000)
    out = feed(order, [start(), *arrivals])
    assert out == [start(), *frames]
    assert order.following() == set()
