"""Token coalescing: many small LLM tokens become fewer ``delta`` frames.

A :class:`Coalescer` buffers tokens and emits their text when it holds
``max_tokens`` tokens or ``flush_s`` after the first buffered token,
whichever comes first. It uses one loop timer per flush, not a task per
token, so the cost per token stays a list append and a length check.

Given a :class:`LagSource` (the pod's :class:`realtime.loop_lag.LoopLag`),
those two limits are the idle ones: while the event loop runs late, each
frame's window and token cap widen, up to ``flush_max_s`` and
``flush_max_tokens`` (:func:`flush_limits`), so a busy pod sends fewer,
larger frames instead of falling further behind. The window widens by
``WINDOW_PER_LAG`` times the lag. The limits are read once per frame, when
its first token arrives.

With ``first_at_once`` the first token goes out alone and at once: the wait
for an answer's first words is what a learner feels most, and one more frame
per answer costs little.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

# A frame's window per second of loop lag. A loop that keeps up runs its timers within a
# millisecond. One whose timers run a few milliseconds late makes every callback wait for a
# round of the loop, and each round is longer than the lag a timer shows (under
# bench.stream_throughput's paced load, a new answer's task waited 2.5 times the mean timer
# lag to start). An answer's start takes several such rounds, and each of its frames takes
# one more. Every frame saved shortens the rounds for every answer on the pod, so the window
# widens well ahead of the lag (docs/benchmarks.md compares 1, 4 and 8).
WINDOW_PER_LAG = 8


class LagSource(Protocol):
    """How late the event loop runs now (:class:`realtime.loop_lag.LoopLag`)."""

    @property
    def lag_s(self) -> float:
        """Seconds the loop's timers fire late, smoothed."""
        ...


def flush_limits(
    lag_s: float, *, flush_s: float, max_tokens: int, flush_max_s: float, flush_max_tokens: int
) -> tuple[float, int]:
    """A frame's window and token cap when the loop runs ``lag_s`` late.

    The window is ``WINDOW_PER_LAG`` times the lag, between ``flush_s`` and
    ``flush_max_s``: the frames a busy loop saves are rounds of the loop that
    every answer's start and every other frame no longer wait for. The token cap
    moves the same fraction of the way from ``max_tokens`` to
    ``flush_max_tokens``, so an unpaced model makes fewer frames too. The widest
    limits are at least the idle ones.
    """
    window_s = WINDOW_PER_LAG * lag_s
    if window_s <= flush_s or flush_max_s <= flush_s:
        return flush_s, max_tokens
    fraction = min((window_s - flush_s) / (flush_max_s - flush_s), 1.0)
    return min(window_s, flush_max_s), max_tokens + round(
        fraction * (flush_max_tokens - max_tokens)
    )


class Coalescer:
    """Buffers tokens and hands their joined text to ``emit``."""

    def __init__(
        self,
        emit: Callable[[str], None],
        *,
        flush_s: float,
        max_tokens: int,
        lag: LagSource | None = None,
        flush_max_s: float | None = None,
        flush_max_tokens: int | None = None,
        on_close: Callable[[int], None] | None = None,
        first_at_once: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``flush_s`` and ``max_tokens`` hold while ``lag`` (if any) reports no lag.

        ``on_close`` receives the number of frames emitted, once, at close or discard.
        """
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        flush_max_s = flush_s if flush_max_s is None else flush_max_s
        flush_max_tokens = max_tokens if flush_max_tokens is None else flush_max_tokens
        if flush_max_s < flush_s or flush_max_tokens < max_tokens:
            raise ValueError("the widest limits must not be below the idle ones")
        self._emit = emit
        self._flush_s = flush_s
        self._idle_tokens = self._max_tokens = max_tokens
        self._lag = lag
        self._flush_max_s = flush_max_s
        self._flush_max_tokens = flush_max_tokens
        self._on_close = on_close
        self._first_at_once = first_at_once
        self._loop = loop or asyncio.get_running_loop()
        self._buffer: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.frames = 0

    def add(self, token: str) -> None:
        """Buffer one token; may emit at once when the buffer is full."""
        if self._closed:
            raise RuntimeError("coalescer is closed")
        if not token:
            return
        self._buffer.append(token)
        if len(self._buffer) >= self._max_tokens or (self._first_at_once and not self.frames):
            self.flush()
        elif self._timer is None:
            self._open_frame()

    def _open_frame(self) -> None:
        """The first token of a frame: read this frame's limits, start its timer."""
        flush_s = self._flush_s
        if self._lag is not None:
            flush_s, self._max_tokens = flush_limits(
                self._lag.lag_s,
                flush_s=flush_s,
                max_tokens=self._idle_tokens,
                flush_max_s=self._flush_max_s,
                flush_max_tokens=self._flush_max_tokens,
            )
        if flush_s <= 0 or len(self._buffer) >= self._max_tokens:
            self.flush()
        else:
            self._timer = self._loop.call_later(flush_s, self.flush)

    def flush(self) -> None:
        """Emit whatever is buffered now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            text = "".join(self._buffer)
            self._buffer.clear()
            self.frames += 1
            self._emit(text)

    def close(self) -> None:
        """Emit the rest and refuse further tokens."""
        self.flush()
        self._finish()

    def discard(self) -> None:
        """Drop the buffer without emitting (the stream was cancelled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buffer.clear()
        self._finish()

    def _finish(self) -> None:
        if not self._closed and self._on_close is not None:
            self._on_close(self.frames)
        self._closed = True
