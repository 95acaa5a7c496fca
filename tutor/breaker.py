"""A circuit breaker: stop calling an endpoint that keeps failing.

    closed ──(``failures`` in a row)──▶ open ──(``reset_s`` later)──▶ half_open
      ▲                                  ▲                               │
      │                                  └────────(probe fails)──────────┤
      └─────────────────────────────────────────(probe succeeds)─────────┘

While open, :meth:`CircuitBreaker.before_call` raises
:class:`core.errors.CircuitOpen` without touching the network. Once
``reset_s`` has passed, the next caller becomes the single probe; everyone
else keeps failing fast until the probe's outcome is recorded.

Pure logic with an injectable clock, meant for single-threaded asyncio use:
no locks, no I/O, no logging.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from core.errors import CircuitOpen

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failures and fails fast while the endpoint is down."""

    def __init__(
        self,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        if reset_s < 0:
            raise ValueError("reset_s must not be negative")
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> State:
        """``closed``, ``open``, or ``half_open`` once ``reset_s`` has passed since opening."""
        if self._state == "open" and self._clock() - self._opened_at >= self._reset_s:
            return "half_open"
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def before_call(self) -> None:
        """Let a call through, or raise :class:`CircuitOpen` to fail fast."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._probing:
            self._state = "half_open"
            self._probing = True
            return
        if state == "half_open":
            raise CircuitOpen("circuit half-open, waiting for the probe call")
        raise CircuitOpen(f"circuit open, next probe in {self._retry_in_s():.1f} s")

    def record_success(self) -> None:
        """The endpoint answered: close the breaker and forget past failures."""
        if self._state == "open":
            # A late answer to a call made before the breaker opened; the probe decides.
            return
        self._state = "closed"
        self._failures = 0
        self._probing = False

    def record_failure(self) -> None:
        """The endpoint failed: count it, and open the breaker at the threshold."""
        if self._state == "open":
            return
        if self._state == "half_open":
            self._open()
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._open()

    def release(self) -> None:
        """The call ended with no verdict on the endpoint (cancelled, or refused as malformed).

        Frees the half-open probe slot so the next caller probes instead;
        without this a cancelled probe would keep the breaker stuck half-open.
        """
        self._probing = False

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._failures = 0
        self._probing = False

    def _retry_in_s(self) -> float:
        return max(self._reset_s - (self._clock() - self._opened_at), 0.0)
