"""Connecting to Redis, directly or through Sentinel, with failover-friendly retries.

With Sentinel, redis-py asks the Sentinels for the current master whenever
it opens a connection; a connection to a master that died fails, and the
retry opens a new one to whatever master the Sentinels name by then.

The asyncio client's connections pack commands with hiredis, in C, as
redis-py's blocking client does; redis-py's own asyncio connection packs
them in Python (redis-py issue 4176), which cost the bus's writer about 8 %
of a loaded pod's CPU.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import ExponentialBackoff
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry
from redis.sentinel import Sentinel as SyncSentinel
from redis.utils import HIREDIS_AVAILABLE

from core.settings import RedisSettings, parse_sentinels

# Everything that means "this Redis is not reachable right now".
UNREACHABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class _PackedByHiredis:
    """``pack_command`` by redis-py's hiredis serializer (what its blocking client uses)."""

    # Typed in some redis-py releases and not in others: either way, no error.
    _packer = HiredisRespSerializer()  # type: ignore[no-untyped-call, unused-ignore]

    def pack_command(self, *args: Any) -> list[bytes]:
        """The command in the Redis protocol, packed in C."""
        return cast(list[bytes], self._packer.pack(*args))


class HiredisConnection(_PackedByHiredis, Connection):
    """A TCP connection whose commands hiredis packs."""


class HiredisSentinelConnection(_PackedByHiredis, SentinelManagedConnection):
    """A connection to the master Sentinel names, whose commands hiredis packs."""


def _options(settings: RedisSettings, retry: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The client's and the Sentinels' options, the same for the async and blocking clients."""
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.connect_timeout_s,
        "socket_timeout": settings.socket_timeout_s,
        "socket_keepalive": True,
        "health_check_interval": 5,
        # A few quick retries ride over a failover without surfacing errors.
        "retry": retry,
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "decode_responses": True,
    }
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": settings.connect_timeout_s,
        "socket_timeout": settings.socket_timeout_s,
    }
    if settings.sentinel_password:
        sentinel_options["password"] = settings.sentinel_password
    return options, sentinel_options


def connect(settings: RedisSettings, *, retries: int = 3) -> aioredis.Redis:
    """A client of the master: through Sentinel when configured, else ``REDIS_URL``.

    A command that meets a broken connection reconnects and runs again up to
    ``retries`` times. A subscriber wants 0: redis-py's pub/sub reconnects and
    subscribes again on its own, silently losing what was published meanwhile.
    """
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries)
    options, sentinel_options = _options(settings, retry)
    if settings.sentinels:
        if HIREDIS_AVAILABLE:
            options["connection_class"] = HiredisSentinelConnection
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            parse_sentinels(settings.sentinels),
            sentinel_kwargs=sentinel_options,
            password=settings.password or None,
            **options,
        )
        return cast(aioredis.Redis, sentinel.master_for(settings.master_name))
    if HIREDIS_AVAILABLE and urlsplit(settings.url).scheme == "redis":
        # Plain TCP only: a rediss:// (TLS) or unix:// URL keeps redis-py's own class. Since
        # redis-py 8.2 a class given here wins over the URL's, and would drop TLS silently.
        options["connection_class"] = HiredisConnection
    return aioredis.Redis.from_url(settings.url, **options)


def connect_sync(settings: RedisSettings) -> redis.Redis:
    """A blocking client of the master (Celery tasks): the same options as :func:`connect`."""
    options, sentinel_options = _options(
        settings, SyncRetry(ExponentialBackoff(cap=0.5, base=0.05), 3)
    )
    if settings.sentinels:
        sentinel = SyncSentinel(  # type: ignore[no-untyped-call, unused-ignore]
            parse_sentinels(settings.sentinels),
            sentinel_kwargs=sentinel_options,
            password=settings.password or None,
            **options,
        )
        return cast(redis.Redis, sentinel.master_for(settings.master_name))  # type: ignore[no-untyped-call, unused-ignore]
    return redis.Redis.from_url(settings.url, **options)
