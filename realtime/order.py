"""Per-connection stream order: every delta once, in seq order, with gaps noticed.

Frames of a stream can reach a pod twice (a resume replay overlapping live
delivery, a re-publish after a Redis failover) or out of order (a live
delta overtaking a replay of the journal). :class:`StreamOrder` turns
whatever arrives into what a client may see: ``stream.start`` once, deltas
with ``seq`` 1, 2, 3, … without gap or repeat, ``stream.end`` once and last.
A delta that arrives early waits until the gap before it is filled; the
caller is told the gap exists so it can read the journal. No I/O here.
"""

from __future__ import annotations

import sys
from typing import Any

Item = tuple[dict[str, Any], str]
_ENDED = sys.maxsize


class StreamOrderOverflow(Exception):
    """Too many frames wait behind a gap that is not being filled."""


class StreamOrder:
    """The ordering state of one connection."""

    def __init__(self, max_pending: int) -> None:
        self._max_pending = max_pending
        self._last: dict[str, int] = {}
        self._pending: dict[str, dict[int, Item]] = {}
        self._pending_end: dict[str, Item] = {}

    def last(self, stream: str) -> int:
        """The last seq delivered for the stream (0 if none)."""
        last = self._last.get(stream, 0)
        return 0 if last == _ENDED else last

    def ended(self, stream: str) -> bool:
        """True once the stream's end was delivered."""
        return self._last.get(stream) == _ENDED

    def following(self) -> set[str]:
        """Streams started or resumed here and not yet ended."""
        return {stream for stream, last in self._last.items() if last != _ENDED}

    def waiting(self, stream: str) -> bool:
        """True while frames of the stream wait for a gap to be filled."""
        return bool(self._pending.get(stream)) or stream in self._pending_end

    def resume(self, stream: str, after: int) -> None:
        """The client has everything up to ``after``: deliver from ``after + 1`` on."""
        self._last[stream] = after
        self._pending.pop(stream, None)
        self._pending_end.pop(stream, None)

    def accept(self, frame: dict[str, Any], text: str) -> tuple[list[Item], bool]:
        """Frames now deliverable, in order, and whether a gap opened before this one."""
        kind = frame.get("type")
        if kind == "stream.start":
            stream = frame["stream"]
            if stream in self._last:
                return [], False
            self._last[stream] = 0
            return [(frame, text)], False
        if kind == "delta":
            return self._delta(frame, text)
        if kind == "stream.end":
            return self._end(frame, text)
        return [(frame, text)], False

    def _delta(self, frame: dict[str, Any], text: str) -> tuple[list[Item], bool]:
        stream, seq = frame["stream"], frame["seq"]
        last = self._last.get(stream, 0)
        if seq <= last:
            return [], False
        if seq > last + 1:
            waiting = self._pending.setdefault(stream, {})
            if len(waiting) >= self._max_pending:
                raise StreamOrderOverflow(stream)
            waiting[seq] = (frame, text)
            return [], True
        ready = [(frame, text)]
        self._last[stream] = seq
        return self._drain(stream, ready), False

    def _end(self, frame: dict[str, Any], text: str) -> tuple[list[Item], bool]:
        stream = frame["stream"]
        last = self._last.get(stream, 0)
        if last == _ENDED:
            return [], False
        if frame.get("seq", 0) > last:
            self._pending_end[stream] = (frame, text)
            return [], True
        self._finish(stream)
        return [(frame, text)], False

    def _drain(self, stream: str, ready: list[Item]) -> list[Item]:
        waiting = self._pending.get(stream)
        while waiting:
            item = waiting.pop(self._last[stream] + 1, None)
            if item is None:
                break
            ready.append(item)
            self._last[stream] += 1
        if not waiting:
            self._pending.pop(stream, None)
        end = self._pending_end.get(stream)
        if end is not None and end[0].get("seq", 0) <= self._last[stream]:
            ready.append(end)
            self._finish(stream)
        return ready

    def _finish(self, stream: str) -> None:
        self._last[stream] = _ENDED
        self._pending.pop(stream, None)
        self._pending_end.pop(stream, None)
