"""Housekeeping of the backplane's Redis keys (the ``cleanup_sessions`` beat task).

Redis already expires most keys by TTL; this catches what a crashed pod leaves:
presence entries past their expiry, ids in the running-stream sets whose stream
meta is gone, and ended journals that lost their TTL. Keys are walked with SCAN
in bounded batches, never KEYS.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import redis

from core import keys

_SCAN_COUNT = 500


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What one cleanup pass removed or fixed."""

    presence_removed: int
    running_removed: int
    journals_expired: int


def cleanup(client: redis.Redis, journal_ttl_s: float, max_keys: int = 100_000) -> CleanupReport:
    """One pass over presence sets, running-stream sets and journals."""
    now_ms = int(time.time() * 1000)
    presence = running = journals = 0
    presence_sets = client.scan_iter(match=keys.PRESENCE_SCAN, count=_SCAN_COUNT)
    for key in itertools.islice(presence_sets, max_keys):
        presence += int(client.zremrangebyscore(key, "-inf", now_ms))
    session_sets = client.scan_iter(match=keys.SESSION_RUNNING_SCAN, count=_SCAN_COUNT)
    for key in itertools.chain([keys.RUNNING], itertools.islice(session_sets, max_keys)):
        for stream in client.sscan_iter(key, count=_SCAN_COUNT):
            if not client.exists(keys.stream_meta(stream), keys.lease(stream)):
                running += int(client.srem(key, stream))
    journal_keys = client.scan_iter(match=keys.JOURNAL_SCAN, count=_SCAN_COUNT)
    for key in itertools.islice(journal_keys, max_keys):
        if client.ttl(key) == -1 and client.xrange(key, "1-0", "1-0"):
            client.expire(key, int(journal_ttl_s))
            journals += 1
    return CleanupReport(presence, running, journals)
