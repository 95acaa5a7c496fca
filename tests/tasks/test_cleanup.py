"""cleanup_sessions against a real Redis."""

from __future__ import annotations

import time

import redis

from core import keys
from devtools.cluster import RedisNode
from tasks.cleanup import cleanup


async def test_cleanup_prunes_what_crashed_pods_leave(redis_node: RedisNode) -> None:
    """Expired presence, running ids without meta, and ended journals without TTL are fixed."""
    client = redis.Redis.from_url(redis_node.url, decode_responses=True)
    now_ms = int(time.time() * 1000)
    client.zadd(keys.presence("s1"), {"pod-a/c1": now_ms - 10_000, "pod-b/c2": now_ms + 60_000})
    client.sadd(keys.RUNNING, "gone", "live")
    client.sadd(keys.session_running("s1"), "gone")
    client.hset(keys.stream_meta("live"), mapping={"session": "s1"})
    client.xadd(keys.journal("ended"), {"t": "hello"}, id="0-1")
    client.xadd(keys.journal("ended"), {"e": "{}"}, id="1-0")
    client.xadd(keys.journal("running"), {"t": "hi"}, id="0-1")
    report = cleanup(client, journal_ttl_s=600)
    assert (report.presence_removed, report.running_removed, report.journals_expired) == (1, 2, 1)
    assert client.zrange(keys.presence("s1"), 0, -1) == ["pod-b/c2"]
    assert client.smembers(keys.RUNNING) == {"live"}
    assert 0 < client.ttl(keys.journal("ended")) <= 600
    assert client.ttl(keys.journal("running")) == -1
    again = cleanup(client, journal_ttl_s=600)
    assert (again.presence_removed, again.running_removed, again.journals_expired) == (0, 0, 0)
