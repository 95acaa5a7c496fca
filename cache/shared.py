"""The L2 tier as the cache sees it: a store shared by every pod.

:class:`~cache.redis_tier.RedisTier` is the implementation; the embedded
default has no L2 and the cache runs on L1 alone. Every method raises
:class:`~core.errors.SharedUnavailable` when the store cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# An invalidation broadcast to every pod: {"op": "key", "key": ...} drops one
# entry, {"op": "ns", "ns": ..., "version": n} retires a namespace.
Invalidation = dict[str, Any]


class SharedTier(Protocol):
    """Values, namespace versions, short locks and invalidation broadcasts."""

    async def start(
        self, on_invalidation: Callable[[Invalidation], None], on_resync: Callable[[], None]
    ) -> None:
        """Start listening; ``on_resync`` runs when broadcasts may have been missed."""
        ...

    async def stop(self) -> None:
        """Stop listening."""
        ...

    async def get(self, key: str) -> bytes | str | None:
        """The stored value, or None."""
        ...

    async def set(self, key: str, value: bytes, ttl_ms: int) -> None:
        """Store ``value`` for ``ttl_ms``."""
        ...

    async def delete(self, key: str) -> None:
        """Drop a value."""
        ...

    async def try_lock(self, key: str, ttl_ms: int) -> str | None:
        """A token if this pod now holds the lock on ``key``, else None."""
        ...

    async def unlock(self, key: str, token: str) -> None:
        """Release a lock taken with ``token`` (a no-op if it expired and moved on)."""
        ...

    async def version(self, namespace: str) -> int:
        """The namespace's current version."""
        ...

    async def bump(self, namespace: str) -> int:
        """Retire every value of the namespace; returns the new version."""
        ...

    async def broadcast(self, message: Invalidation) -> None:
        """Send an invalidation to every pod (this one included)."""
        ...
