"""How late the event loop runs: one timer, rescheduled from itself.

:class:`LoopLag` asks the loop to call it every ``interval_s`` and measures
how late each call comes. A loop that keeps up calls it within a millisecond;
a loop behind on callbacks (too many frames to write, a blocking call) calls
it late by about as long as a callback now waits. Each sample goes to
``observe`` (the pod's histogram); :attr:`LoopLag.lag_s` is the smoothed
current lag that the coalescers read (:mod:`realtime.coalesce`).

It costs one loop timer per ``interval_s`` and no task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LoopLag:
    """Samples event-loop lag every ``interval_s`` while started."""

    def __init__(
        self,
        *,
        interval_s: float = 0.05,
        half_life_s: float = 0.25,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        if interval_s <= 0 or half_life_s <= 0:
            raise ValueError("interval_s and half_life_s must be positive")
        self._interval_s = interval_s
        # Peak hold with exponential decay: a late sample raises lag_s at once, and
        # lag_s then halves every half_life_s while the loop keeps time. Rising fast
        # widens the coalescers' windows as soon as the loop falls behind; decaying
        # slowly keeps one on-time tick in a busy stretch from narrowing them back
        # and forth. One float and one multiply, where a window of samples would
        # need a deque and a max per tick.
        self._decay = 0.5 ** (interval_s / half_life_s)
        self._observe = observe
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self.lag_s = 0.0

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._handle is not None

    def start(self) -> None:
        """Start sampling on the running loop (again after stop(); no-op while running)."""
        if self._handle is not None:
            return
        self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        """Stop sampling; ``lag_s`` reads 0 from then on."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.lag_s = 0.0

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self._interval_s
        self._handle = loop.call_at(self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        sample = max(loop.time() - self._due, 0.0)
        self.lag_s = max(sample, self.lag_s * self._decay)
        self._schedule(loop)
        if self._observe is not None:
            self._observe(sample)
