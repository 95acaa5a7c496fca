"""How many WebSockets one user may hold open: on one pod, or across every pod.

A connection claims a slot for its user before the socket is accepted and
releases it when it closes. Over ``LIVETUTOR_MAX_CONNECTIONS_PER_USER`` the
claim is refused, so one token cannot pin a pod's sockets.

:class:`MemoryConnectionLimits` counts in process (one pod).
:class:`RedisConnectionLimits` counts across pods in one sorted set per user
(:func:`core.keys.user_connections`): ``<pod>/<connection>`` scored by when
it expires. A claim drops the expired members, counts and adds in one Lua
script, so two pods can never both take the last slot. Each pod pushes its
members' expiry ahead every third of ``ttl_s`` (like session presence), so
the connections of a pod that crashed stop counting after ``ttl_s``. When
Redis cannot be reached the claim falls back to this pod's own count: the
cap then holds per pod, and no learner is locked out by a Redis outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import structlog

from core import keys
from core.redis_link import UNREACHABLE

log = structlog.get_logger("livetutor.connection_limits")

# Members renewed per pipeline round trip.
_RENEW_BATCH = 1000

# KEYS[1] the user's set; ARGV: member, now (ms), its expiry (ms), the cap, the key's TTL (ms).
# 1 when the member holds a slot (newly or already), 0 when every slot is taken.
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class ConnectionLimits(Protocol):
    """Slots of open connections, per user."""

    async def claim(self, user: str, connection: str) -> bool:
        """Take a slot for ``connection``; False when the user holds every slot already."""
        ...

    async def release(self, user: str, connection: str) -> None:
        """Free the slot of a closed connection."""
        ...

    async def start(self) -> None:
        """Start any background renewal."""
        ...

    async def stop(self) -> None:
        """Stop it."""
        ...


class MemoryConnectionLimits:
    """Per-user slots held in process."""

    def __init__(self, max_per_user: int) -> None:
        if max_per_user < 1:
            raise ValueError("max_per_user must be at least 1")
        self._max = max_per_user
        self._held: dict[str, set[str]] = {}

    def take(self, user: str, connection: str) -> bool:
        """Take a slot unless the user holds every one."""
        held = self._held.get(user, set())
        if connection not in held and len(held) >= self._max:
            return False
        self.add(user, connection)
        return True

    def add(self, user: str, connection: str) -> None:
        """Record a slot whatever the count (another authority allowed it)."""
        self._held.setdefault(user, set()).add(connection)

    def drop(self, user: str, connection: str) -> None:
        """Forget a slot."""
        held = self._held.get(user)
        if held is None:
            return
        held.discard(connection)
        if not held:
            del self._held[user]

    def held(self) -> Iterator[tuple[str, str]]:
        """Every ``(user, connection)`` holding a slot."""
        for user, connections in list(self._held.items()):
            for connection in list(connections):
                yield user, connection

    async def claim(self, user: str, connection: str) -> bool:
        """:meth:`take`, as :class:`ConnectionLimits`."""
        return self.take(user, connection)

    async def release(self, user: str, connection: str) -> None:
        """:meth:`drop`, as :class:`ConnectionLimits`."""
        self.drop(user, connection)

    async def start(self) -> None:
        """Nothing to renew in process."""

    async def stop(self) -> None:
        """Nothing to stop."""


class RedisConnectionLimits:
    """Per-user slots in Redis, shared by every pod."""

    def __init__(
        self,
        redis: Any,
        *,
        pod: str,
        max_per_user: int,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ttl_s``: how long the slots of a pod that stopped renewing them still count."""
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._redis = redis
        self._pod = pod
        self._max = max_per_user
        self._ttl_ms = int(ttl_s * 1000)
        self._clock = clock
        # This pod's slots: renewed in Redis, and the count to fall back on without it.
        self._local = MemoryConnectionLimits(max_per_user)
        self._claim = redis.register_script(_CLAIM)
        self._task: asyncio.Task[None] | None = None

    def _member(self, connection: str) -> str:
        return f"{self._pod}/{connection}"

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def claim(self, user: str, connection: str) -> bool:
        """Take a slot in Redis; this pod's own count when Redis cannot be reached."""
        now_ms = self._now_ms()
        try:
            allowed = await self._claim(
                keys=[keys.user_connections(user)],
                args=[
                    self._member(connection),
                    now_ms,
                    now_ms + self._ttl_ms,
                    self._max,
                    self._ttl_ms * 2,
                ],
            )
        except UNREACHABLE as exc:
            log.warning("connection_limits.redis_unreachable", error=type(exc).__name__)
            return self._local.take(user, connection)
        if not allowed:
            return False
        self._local.add(user, connection)
        return True

    async def release(self, user: str, connection: str) -> None:
        """Free the slot now; if Redis cannot be reached it expires within ``ttl_s``."""
        self._local.drop(user, connection)
        try:
            await self._redis.zrem(keys.user_connections(user), self._member(connection))
        except UNREACHABLE as exc:
            log.warning("connection_limits.release_failed", error=type(exc).__name__)

    async def renew(self) -> None:
        """Push the expiry of this pod's slots ``ttl_s`` ahead (re-adding any Redis lost)."""
        expiry_ms = self._now_ms() + self._ttl_ms
        held = list(self._local.held())
        for start in range(0, len(held), _RENEW_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for user, connection in held[start : start + _RENEW_BATCH]:
                    key = keys.user_connections(user)
                    pipe.zadd(key, {self._member(connection): expiry_ms})
                    pipe.pexpire(key, self._ttl_ms * 2)
                await pipe.execute()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self.renew()
            except UNREACHABLE as exc:
                log.warning("connection_limits.renew_failed", error=type(exc).__name__)

    async def start(self) -> None:
        """Start renewing this pod's slots."""
        if self._task is None:
            self._task = asyncio.create_task(self._renew_loop(), name="connection-limits-renew")

    async def stop(self) -> None:
        """Stop renewing (before the shared client closes)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
