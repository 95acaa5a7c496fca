"""The L2 tier in Redis: values with a TTL, version counters, locks, invalidations.

Keys (named in :mod:`core.keys`): :func:`~core.keys.cache_value` for values,
:func:`~core.keys.cache_version` for a namespace's version and
:func:`~core.keys.cache_lock` for the short single-flight locks (redis-py's
:class:`~redis.asyncio.lock.Lock`: ``SET NX PX``, released by a
compare-and-delete script). Invalidations go out on the
:data:`~core.keys.CACHE_INVALIDATION` channel as JSON. The subscriber reconnects on its
own; after a reconnect it asks the cache to resync, since broadcasts sent
while it was away are lost. It should have a client that never retries
(``connect(settings, retries=0)``): redis-py's pub/sub otherwise reconnects
inside ``get_message`` and the loss goes unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import structlog
from redis.asyncio.lock import Lock
from redis.exceptions import LockNotOwnedError

from cache.shared import Invalidation
from core import keys
from core.errors import SharedUnavailable
from core.redis_link import UNREACHABLE

log = structlog.get_logger("livetutor.cache")


class RedisTier:
    """:class:`cache.shared.SharedTier` on a redis-py asyncio client."""

    def __init__(self, redis: Any, *, subscriber: Any = None, max_in_flight: int = 32) -> None:
        """``subscriber``, a client for the invalidation listener, is closed by :meth:`stop`."""
        self._redis = redis
        self._subscriber = subscriber
        # The client's pool is shared with the backplane: the cache never takes all of it.
        self._slots = asyncio.Semaphore(max_in_flight)
        # Locks this pod holds, by the token handed to the cache.
        self._held: dict[str, Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.subscribed = asyncio.Event()

    async def start(
        self, on_invalidation: Callable[[Invalidation], None], on_resync: Callable[[], None]
    ) -> None:
        """Start the subscriber task."""
        self._task = asyncio.create_task(
            self._listen_loop(on_invalidation, on_resync), name="cache-invalidations"
        )

    async def stop(self) -> None:
        """Stop the subscriber task."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._subscriber is not None:
            await self._subscriber.aclose()

    @contextlib.asynccontextmanager
    async def _call(self) -> AsyncIterator[None]:
        """One Redis call: within the cache's share of connections, errors as SharedUnavailable."""
        try:
            async with self._slots:
                yield
        except UNREACHABLE as exc:
            raise SharedUnavailable(str(exc)) from exc

    async def get(self, key: str) -> bytes | str | None:
        """The stored value, or None."""
        try:
            async with self._call():
                value: bytes | str | None = await self._redis.get(keys.cache_value(key))
        except UnicodeDecodeError:
            # Not even text (the client decodes replies): what the cache treats as undecodable.
            return ""
        return value

    async def set(self, key: str, value: bytes, ttl_ms: int) -> None:
        """Store ``value`` for ``ttl_ms``."""
        async with self._call():
            await self._redis.set(keys.cache_value(key), value, px=ttl_ms)

    async def delete(self, key: str) -> None:
        """Drop a value."""
        async with self._call():
            await self._redis.delete(keys.cache_value(key))

    async def try_lock(self, key: str, ttl_ms: int) -> str | None:
        """A token if this pod now holds the lock on ``key``, else None."""
        lock = self._redis.lock(
            keys.cache_lock(key), timeout=ttl_ms / 1000, blocking=False, thread_local=False
        )
        async with self._call():
            taken = await lock.acquire()
        if not taken:
            return None
        token = secrets.token_hex(8)
        self._held[token] = lock
        return token

    async def unlock(self, key: str, token: str) -> None:
        """Release a lock taken with ``token`` (a no-op if it expired and moved on)."""
        lock = self._held.pop(token, None)
        if lock is None:
            return
        with contextlib.suppress(LockNotOwnedError):
            async with self._call():
                await lock.release()

    async def version(self, namespace: str) -> int:
        """The namespace's current version (0 until first bumped)."""
        async with self._call():
            value = await self._redis.get(keys.cache_version(namespace))
        return int(value or 0)

    async def bump(self, namespace: str) -> int:
        """Increment the namespace's version."""
        async with self._call():
            return int(await self._redis.incr(keys.cache_version(namespace)))

    async def broadcast(self, message: Invalidation) -> None:
        """Publish an invalidation to every pod."""
        async with self._call():
            await self._redis.publish(keys.CACHE_INVALIDATION, msgspec.json.encode(message))

    async def _listen_loop(
        self, on_invalidation: Callable[[Invalidation], None], on_resync: Callable[[], None]
    ) -> None:
        delay_s, subscribed_before = 0.05, False
        while not self._stopping:
            pubsub = (self._subscriber or self._redis).pubsub()
            try:
                await pubsub.subscribe(keys.CACHE_INVALIDATION)
                if subscribed_before:
                    on_resync()
                subscribed_before = True
                self.subscribed.set()
                delay_s = 0.05
                while not self._stopping:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "message":
                        _dispatch(message["data"], on_invalidation)
            except UNREACHABLE as exc:
                log.warning("cache.subscriber_lost", error=type(exc).__name__)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 1.0)


def _dispatch(data: bytes | str, on_invalidation: Callable[[Invalidation], None]) -> None:
    try:
        message = msgspec.json.decode(data)
    except msgspec.DecodeError:
        log.warning("cache.bad_invalidation")
        return
    if isinstance(message, dict):
        on_invalidation(message)
