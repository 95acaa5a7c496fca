"""In-process stream journal: the deltas of running and recently ended streams.

``resume`` replays a stream from it after the last ``seq`` a client saw.
Ended streams stay for ``ended_ttl_s`` so a client that reconnects just
after the end still gets the rest and the ``stream.end``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache


@dataclass(slots=True)
class StreamLog:
    """Everything sent on one stream, in order."""

    stream: str
    session: str
    user: str
    course: str
    ask: str
    deltas: list[str] = field(default_factory=list)
    end: dict[str, Any] | None = None

    @property
    def seq(self) -> int:
        """The last delta's seq (0 before the first)."""
        return len(self.deltas)

    def frames_after(self, after: int) -> list[dict[str, Any]]:
        """Delta frames with ``seq > after``, then ``stream.end`` if it ended."""
        frames = [
            {"type": "delta", "stream": self.stream, "seq": seq, "text": text}
            for seq, text in enumerate(self.deltas[after:], start=after + 1)
        ]
        if self.end is not None:
            frames.append(self.end)
        return frames


class MemoryJournal:
    """Running streams by id, and ended ones for a while."""

    def __init__(self, *, ended_ttl_s: float = 600.0, max_ended: int = 2_000) -> None:
        self._running: dict[str, StreamLog] = {}
        self._ended: TTLCache[str, StreamLog] = TTLCache(maxsize=max_ended, ttl=ended_ttl_s)

    def open(self, log: StreamLog) -> StreamLog:
        """Register a new running stream."""
        self._running[log.stream] = log
        return log

    def append(self, stream: str, text: str) -> int:
        """Record a delta and return its seq."""
        log = self._running[stream]
        log.deltas.append(text)
        return len(log.deltas)

    def finish(self, stream: str, end: dict[str, Any]) -> None:
        """Record the ``stream.end`` frame and keep the log for late resumes."""
        log = self._running.pop(stream)
        log.end = end
        self._ended[stream] = log

    def get(self, stream: str) -> StreamLog | None:
        """The stream's log, running or recently ended."""
        return self._running.get(stream) or self._ended.get(stream)

    def running(self, session: str | None = None) -> list[StreamLog]:
        """Running streams, optionally of one session."""
        return [log for log in self._running.values() if session in (None, log.session)]
