"""Per-user token buckets in Redis, shared by every pod (one Lua script per take).

The script reads Redis's own clock, so pods with skewed clocks agree. When
Redis cannot be reached the pod falls back to its in-process buckets: asks
are still limited, per pod, and never fail because of the limiter.
"""

from __future__ import annotations

from typing import Any

import structlog

from core import keys
from core.redis_link import UNREACHABLE
from realtime.ratelimit import TokenBuckets

log = structlog.get_logger("livetutor.ratelimit")

_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(now - at, 0) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisTokenBuckets:
    """Token buckets keyed by user, in Redis."""

    def __init__(self, redis: Any, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._rate = rate_per_s
        self._burst = burst
        self._script = redis.register_script(_TAKE)
        self._fallback = TokenBuckets(rate_per_s, burst)

    async def allow(self, key: str) -> float:
        """Take a token: 0.0 if allowed, else the seconds until one is available."""
        try:
            wait = await self._script(keys=[keys.rate_limit(key)], args=[self._rate, self._burst])
        except UNREACHABLE as exc:
            log.warning("ratelimit.redis_unreachable", error=type(exc).__name__)
            return self._fallback.take(key)
        return float(wait)
