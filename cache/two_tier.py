"""The two-tier cache: L1 in the pod, then L2 shared by every pod, then the loader.

``get`` looks in L1 (a cachetools LRU with a TTL), then in L2; a value found
in L2 fills L1. ``get_or_load`` runs the loader on a miss, once per key in the
pod (:class:`~cache.flight.SingleFlight`) and, with an L2, once per key across
pods: the pod that takes the key's short lock computes, the others wait for
its value (at most ``lock_wait_s``, then compute themselves).

Keys carry the namespace's version, so retiring a namespace is one counter
bump and one broadcast; every pod drops its L1 copies when the broadcast
arrives, and clears its L1 whenever it may have missed one (the subscriber
reconnected, or L2 was unreachable for a while).

With L2 down the cache works from L1 alone: each error is counted and logged,
the pod leaves L2 alone for ``l2_retry_s``, and no caller sees the error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import msgspec
import structlog
from cachetools import TTLCache

from cache.codec import SCHEMA, Namespace, encode
from cache.flight import SingleFlight
from cache.shared import Invalidation, SharedTier
from core.errors import SharedUnavailable
from core.settings import CacheSettings

T = TypeVar("T")
log = structlog.get_logger("livetutor.cache")


class CacheObserver(Protocol):
    """What the cache reports for metrics."""

    def cache_hit(self, namespace: str, tier: str) -> None:
        """A value was found in ``tier`` (``l1`` or ``l2``)."""
        ...

    def cache_miss(self, namespace: str) -> None:
        """A value was in neither tier."""
        ...

    def cache_load(self, namespace: str, seconds: float) -> None:
        """The loader computed a missing value in ``seconds``."""
        ...

    def cache_rejected(self, namespace: str) -> None:
        """A value was not cached: over the size cap."""
        ...

    def cache_error(self, operation: str) -> None:
        """An L2 operation failed (``get``, ``set``, ``lock``, ``decode``, ...)."""
        ...


class TwoTierCache:
    """L1 in process in front of an optional shared L2."""

    def __init__(
        self,
        settings: CacheSettings,
        shared: SharedTier | None = None,
        *,
        observer: CacheObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._shared = shared
        self._observer = observer
        self._clock = clock
        self._l1: TTLCache[str, Any] = TTLCache(
            maxsize=settings.l1_size, ttl=settings.l1_ttl_s, timer=clock
        )
        self._versions: dict[str, int] = {}
        self._flights = SingleFlight()
        # Concurrent L2 reads of one key (or one namespace's version) share a round trip.
        self._reads = SingleFlight()
        self._down_until = 0.0
        self._degraded = False
        self._l2_ttl_ms = int(settings.l2_ttl_s * 1000)
        self._lock_ttl_ms = int(settings.lock_ttl_s * 1000)

    @property
    def has_l2(self) -> bool:
        """True when an L2 is configured (whether or not it answers right now)."""
        return self._shared is not None

    @property
    def l1_size(self) -> int:
        """Entries in L1 now."""
        return len(self._l1)

    async def start(self) -> None:
        """Start listening for invalidations."""
        if self._shared is not None:
            await self._shared.start(self._on_invalidation, self._resync)

    async def stop(self) -> None:
        """Stop loads and the listener."""
        await self._flights.cancel_all(timeout_s=2.0)
        await self._reads.cancel_all(timeout_s=1.0)
        if self._shared is not None:
            await self._shared.stop()

    # -- reads ----------------------------------------------------------------

    async def get(self, ns: Namespace[T], key: str) -> T | None:
        """The cached value of ``key``, or None."""
        full = await self._key(ns, key)
        value: T | None = self._l1.get(full)
        if value is not None:
            self._hit(ns, "l1")
            return value
        if self._shared is not None:
            value = await self._reads.do(full, lambda: self._l2_get(ns, full))
            if value is not None:
                self._l1[full] = value
                self._hit(ns, "l2")
                return value
        if self._observer is not None:
            self._observer.cache_miss(ns.name)
        return None

    async def get_or_load(
        self, ns: Namespace[T], key: str, loader: Callable[[], Awaitable[T]]
    ) -> T:
        """The cached value of ``key``, or ``loader()``'s, which is then cached."""
        value = await self.get(ns, key)
        if value is not None:
            return value
        full = await self._key(ns, key)
        return await self._flights.do(full, lambda: self._load(ns, full, loader))

    async def _load(self, ns: Namespace[T], full: str, loader: Callable[[], Awaitable[T]]) -> T:
        shared = self._l2()
        if shared is not None:
            try:
                return await self._load_shared(shared, ns, full, loader)
            except SharedUnavailable as exc:
                self._l2_failed("lock", exc)
        value = await self._timed_load(ns, loader)
        await self._store(ns, full, value)
        return value

    async def _load_shared(
        self,
        shared: SharedTier,
        ns: Namespace[T],
        full: str,
        loader: Callable[[], Awaitable[T]],
    ) -> T:
        deadline = self._clock() + self._settings.lock_wait_s
        delay_s = 0.005
        while True:
            token = await shared.try_lock(full, self._lock_ttl_ms)
            if token is not None:
                try:
                    # Another pod may have stored it between our miss and the lock.
                    found = await self._l2_get(ns, full)
                    if found is not None:
                        self._l1[full] = found
                        return found
                    value = await self._timed_load(ns, loader)
                    await self._store(ns, full, value)
                    return value
                finally:
                    await self._release(shared, full, token)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.1)
            found = await self._l2_get(ns, full)
            if found is not None:
                self._l1[full] = found
                self._hit(ns, "l2")
                return found
            if self._clock() >= deadline:
                log.info("cache.lock_wait_expired", namespace=ns.name)
                value = await self._timed_load(ns, loader)
                await self._store(ns, full, value)
                return value

    async def _release(self, shared: SharedTier, full: str, token: str) -> None:
        try:
            await asyncio.shield(shared.unlock(full, token))
        except SharedUnavailable as exc:
            self._l2_failed("unlock", exc)

    async def _timed_load(self, ns: Namespace[T], loader: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        value = await loader()
        if self._observer is not None:
            self._observer.cache_load(ns.name, time.perf_counter() - started)
        return value

    async def _l2_get(self, ns: Namespace[T], full: str) -> T | None:
        shared = self._l2()
        if shared is None:
            return None
        try:
            raw = await shared.get(full)
        except SharedUnavailable as exc:
            self._l2_failed("get", exc)
            return None
        self._l2_ok()
        if raw is None:
            return None
        try:
            return ns.decode(raw)
        except msgspec.MsgspecError:
            # Poisoned or from an incompatible writer: a miss; the next store replaces it.
            log.warning("cache.undecodable", namespace=ns.name)
            if self._observer is not None:
                self._observer.cache_error("decode")
            return None

    # -- writes ---------------------------------------------------------------

    async def set(self, ns: Namespace[T], key: str, value: T) -> bool:
        """Cache ``value``; False when it is over the size cap and was not cached."""
        return await self._store(ns, await self._key(ns, key), value)

    async def _store(self, ns: Namespace[T], full: str, value: T) -> bool:
        data = encode(value)
        if len(data) > self._settings.max_value_bytes:
            if self._observer is not None:
                self._observer.cache_rejected(ns.name)
            self._l1.pop(full, None)
            return False
        self._l1[full] = value
        shared = self._l2()
        if shared is not None:
            try:
                await shared.set(full, data, self._l2_ttl_ms)
                self._l2_ok()
            except SharedUnavailable as exc:
                self._l2_failed("set", exc)
        return True

    async def invalidate(self, ns: Namespace[Any], key: str) -> None:
        """Drop ``key`` from L2 and from every pod's L1."""
        full = await self._key(ns, key)
        self._l1.pop(full, None)
        if self._shared is None:
            return
        try:
            await self._shared.delete(full)
            await self._shared.broadcast({"op": "key", "key": full})
        except SharedUnavailable as exc:
            self._l2_failed("invalidate", exc)

    async def retire(self, ns: Namespace[Any]) -> int:
        """Retire every value of ``ns`` on every pod; returns the new version."""
        if self._shared is None:
            version = self._versions.get(ns.name, 0) + 1
            self._retire_local(ns.name, version)
            return version
        try:
            version = await self._shared.bump(ns.name)
            self._retire_local(ns.name, version)
            await self._shared.broadcast({"op": "ns", "ns": ns.name, "version": version})
        except SharedUnavailable as exc:
            self._l2_failed("retire", exc)
            raise
        return version

    # -- coherence ------------------------------------------------------------

    async def _key(self, ns: Namespace[Any], key: str) -> str:
        version = self._versions.get(ns.name)
        if version is None:
            shared = self._l2()
            if self._shared is None:
                version = self._versions[ns.name] = 0
            elif shared is not None:
                version = await self._reads.do(
                    "\0version:" + ns.name, lambda: self._fetch_version(shared, ns.name)
                )
        # Unknown version (L2 down): L1-only keys that the resync on recovery clears.
        tag = "-" if version is None else str(version)
        return f"{ns.name}:{SCHEMA}.{tag}:{key}"

    async def _fetch_version(self, shared: SharedTier, namespace: str) -> int | None:
        try:
            version = await shared.version(namespace)
        except SharedUnavailable as exc:
            self._l2_failed("version", exc)
            return None
        self._l2_ok()
        version = max(version, self._versions.get(namespace, 0))
        self._versions[namespace] = version
        return version

    def _on_invalidation(self, message: Invalidation) -> None:
        op = message.get("op")
        if op == "key" and isinstance(message.get("key"), str):
            self._l1.pop(message["key"], None)
        elif op == "ns" and isinstance(message.get("ns"), str):
            version = message.get("version")
            if isinstance(version, int):
                self._retire_local(message["ns"], version)

    def _retire_local(self, namespace: str, version: int) -> None:
        if version <= self._versions.get(namespace, -1):
            return
        self._versions[namespace] = version
        prefix = f"{namespace}:"
        for full in [k for k in list(self._l1.keys()) if k.startswith(prefix)]:
            self._l1.pop(full, None)

    def _resync(self) -> None:
        """Broadcasts may have been missed: forget L1 and the namespace versions."""
        self._l1.clear()
        self._versions.clear()
        log.info("cache.resynced")

    # -- L2 health ------------------------------------------------------------

    def _l2(self) -> SharedTier | None:
        """The shared tier, unless there is none or it failed less than ``l2_retry_s`` ago."""
        if self._shared is None or self._clock() < self._down_until:
            return None
        return self._shared

    def _l2_failed(self, operation: str, exc: BaseException) -> None:
        if self._observer is not None:
            self._observer.cache_error(operation)
        if not self._degraded:
            log.warning("cache.l2_unavailable", operation=operation, error=str(exc)[:200])
        self._degraded = True
        self._down_until = self._clock() + self._settings.l2_retry_s

    def _l2_ok(self) -> None:
        if self._degraded:
            self._degraded = False
            log.info("cache.l2_recovered")
            self._resync()

    def _hit(self, ns: Namespace[Any], tier: str) -> None:
        if self._observer is not None:
            self._observer.cache_hit(ns.name, tier)
