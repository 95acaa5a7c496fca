"""Stream journal records, and the in-process journal of the embedded default.

Every answer is a stream: a :class:`StreamMeta` (who asked what, where, which
pod owns it) and its deltas in ``seq`` order, then its ``stream.end``.
``resume`` replays a stream from the journal after the last ``seq`` a client
saw. Ended streams stay for ``ended_ttl_s`` so a client that reconnects just
after the end still gets the rest and the ``stream.end``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cachetools import TTLCache

from realtime import protocol


@dataclass(slots=True)
class StreamMeta:
    """What any pod needs to resume, cancel or take over a stream."""

    stream: str
    session: str
    user: str
    course: str
    ask: str
    mode: str = "explain"
    question: str = ""
    owner: str = ""
    hint_level: int = 0
    # The course problem a hint is about ("" for a free question), and whether an
    # explain ask became a hint by course policy: a pod taking over rebuilds the guard.
    problem: str = ""
    hint_only: bool = False
    epoch: str = ""
    started_at: float = field(default_factory=time.time)

    def to_fields(self) -> dict[str, str]:
        """The meta as flat strings (a Redis hash)."""
        return {k: str(v) for k, v in asdict(self).items()}

    def start_frame(self) -> dict[str, Any]:
        """The stream's ``stream.start``, as sent when it opened and whenever it is replayed."""
        return protocol.stream_start(
            self.stream,
            self.ask,
            self.session,
            self.course,
            self.mode,
            text=self.question,
            hint_level=self.hint_level if self.mode == "hint" else None,
            problem=self.problem or None,
            hint_only=self.hint_only,
        )

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> StreamMeta:
        """The inverse of :meth:`to_fields`."""
        return cls(
            stream=raw["stream"],
            session=raw["session"],
            user=raw["user"],
            course=raw["course"],
            ask=raw["ask"],
            mode=raw.get("mode", "explain"),
            question=raw.get("question", ""),
            owner=raw.get("owner", ""),
            hint_level=int(raw.get("hint_level", "0")),
            problem=raw.get("problem", ""),
            hint_only=raw.get("hint_only", "False") == "True",
            epoch=raw.get("epoch", ""),
            started_at=float(raw.get("started_at", "0")),
        )


@dataclass(slots=True)
class StreamRead:
    """A journal read: deltas after a seq, and the end frame if the stream ended."""

    deltas: list[tuple[int, str]]
    end: dict[str, Any] | None

    def frames(self, stream: str) -> list[dict[str, Any]]:
        """The frames to send, in order."""
        out = [protocol.delta(stream, seq, text) for seq, text in self.deltas]
        if self.end is not None:
            out.append(self.end)
        return out


@dataclass(slots=True)
class StreamLog:
    """Everything sent on one stream, in order."""

    meta: StreamMeta
    deltas: list[str] = field(default_factory=list)
    end: dict[str, Any] | None = None

    @property
    def stream(self) -> str:
        """The stream id."""
        return self.meta.stream

    @property
    def session(self) -> str:
        """The session the stream belongs to."""
        return self.meta.session

    @property
    def seq(self) -> int:
        """The last delta's seq (0 before the first)."""
        return len(self.deltas)

    def read(self, after: int) -> StreamRead:
        """Deltas with ``seq > after``, and the end frame if it ended."""
        return StreamRead(list(enumerate(self.deltas[after:], start=after + 1)), self.end)


class MemoryJournal:
    """Running streams by id, and ended ones for a while."""

    def __init__(self, *, ended_ttl_s: float = 600.0, max_ended: int = 2_000) -> None:
        self._running: dict[str, StreamLog] = {}
        self._ended: TTLCache[str, StreamLog] = TTLCache(maxsize=max_ended, ttl=ended_ttl_s)

    def open(self, meta: StreamMeta) -> StreamLog:
        """Register a new running stream."""
        log = self._running[meta.stream] = StreamLog(meta)
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
