"""The Redis clients: commands packed by hiredis, over a real redis-server."""

from __future__ import annotations

import pytest
from redis.exceptions import DataError

from core.redis_link import HiredisConnection, HiredisSentinelConnection, connect
from core.settings import RedisSettings
from tests.support.redis import own_redis


async def test_commands_reach_redis_intact_when_hiredis_packs_them() -> None:
    """Text, numbers and a pipeline of stream and pub/sub commands, as the bus sends them."""
    async with own_redis() as client:
        assert client.connection_pool.connection_class is HiredisConnection
        await client.set("text", "café “quoted” 日本")
        assert await client.get("text") == "café “quoted” 日本"
        async with client.pipeline(transaction=False) as pipe:
            pipe.xadd("journal", {"seq": 7, "at": 0.25, "text": "Ein Wort"})
            pipe.publish("session", "frame")
            pipe.expire("journal", 60)
            added, receivers, expiring = await pipe.execute()
        assert receivers == 0 and expiring
        assert await client.xrange("journal") == [
            (added, {"seq": "7", "at": "0.25", "text": "Ein Wort"})
        ]
        # Two words in the command name go as two arguments, as redis-py sends them.
        assert await client.execute_command("CONFIG GET", "maxmemory-policy")


async def test_a_value_redis_cannot_take_is_a_data_error() -> None:
    """None is refused before anything is sent, as redis-py's own packing refuses it."""
    async with own_redis() as client:
        with pytest.raises(DataError):
            await client.set("key", None)  # type: ignore[arg-type]
        assert await client.ping()


async def test_each_kind_of_address_gets_its_connection() -> None:
    """Sentinel's master connections pack with hiredis too; a TLS URL keeps redis-py's TLS
    connection and a unix socket URL its socket one."""
    sentinel = connect(RedisSettings(sentinels=("127.0.0.1:1",)))
    assert sentinel.connection_pool.connection_class is HiredisSentinelConnection
    plain = connect(RedisSettings(url="redis://127.0.0.1:1/0"))
    assert plain.connection_pool.connection_class is HiredisConnection
    tls = connect(RedisSettings(url="rediss://127.0.0.1:1/0"))
    assert tls.connection_pool.connection_class.__name__ == "SSLConnection"
    unix = connect(RedisSettings(url="unix:///tmp/livetutor-no-such.sock"))
    assert unix.connection_pool.connection_class.__name__ == "UnixDomainSocketConnection"
    for client in (sentinel, plain, tls, unix):
        await client.aclose()
