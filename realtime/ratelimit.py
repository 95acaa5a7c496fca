"""Per-user token buckets, held in process (Redis-backed ones: realtime.redis_ratelimit).

Each key gets ``burst`` tokens that refill at ``rate_per_s``. Buckets of
users who have gone quiet expire from a bounded TTL cache, so memory stays
flat however many users pass through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from cachetools import TTLCache


class AskLimiter(Protocol):
    """Allows or refuses one ask per call, per user."""

    async def allow(self, key: str) -> float:
        """0.0 if allowed, else the seconds until the next ask is allowed."""
        ...


class TokenBuckets:
    """Allow or refuse one action per call, per key."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        # A bucket left alone long enough to refill completely is the same as a new one.
        idle_s = burst / rate_per_s
        self._buckets: TTLCache[str, tuple[float, float]] = TTLCache(
            maxsize=max_keys, ttl=max(idle_s, 1.0), timer=clock
        )

    def take(self, key: str) -> float:
        """Take a token: 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self._rate

    async def allow(self, key: str) -> float:
        """:meth:`take`, as an :class:`AskLimiter`."""
        return self.take(key)
