"""A redis-server of the test's own and a client of it, for fixtures that choose it at run time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from core.redis_link import connect
from core.settings import RedisSettings
from devtools.cluster import RedisNode


@asynccontextmanager
async def own_redis() -> AsyncIterator[aioredis.Redis]:
    """A client of a fresh redis-server on a free port; both are closed afterwards."""
    node = RedisNode()
    await node.start()
    try:
        client = connect(RedisSettings(url=node.url))
        try:
            yield client
        finally:
            await client.aclose()
    finally:
        await node.stop()
