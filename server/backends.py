"""Which implementation the pod runs for each interchangeable part, chosen in one place.

Every part with an embedded and a production side is picked here by name
from the settings, never by probing an object's type:

========================  ==========================  ==============================
part                      embedded (nothing set)      production
========================  ==========================  ==============================
store                     SQLite in the data dir      Postgres (``DATABASE_URL``)
LLM provider              offline tutor               OpenAI-compatible endpoint
backplane and journal     in process                  Redis, direct or via Sentinel
ask rate limits           in process                  Redis
connections per user      in process                  Redis
cache L2                  none (L1 alone)             Redis
most asked questions      in process                  Redis
========================  ==========================  ==============================

The Redis-backed parts share one client, made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cache.popular import MemoryPopular, PopularQuestions
from cache.two_tier import TwoTierCache
from core.metrics import Metrics
from core.settings import Settings, SettingsError
from realtime.connection_limits import (
    ConnectionLimits,
    MemoryConnectionLimits,
    RedisConnectionLimits,
)
from realtime.ratelimit import AskLimiter, TokenBuckets
from realtime.streams import MemoryBus, StreamBus
from store.store import Store
from tutor.providers import create_provider

__all__ = ["SharedBackends", "create_provider", "create_shared", "create_store", "shared_kind"]

SharedKind = Literal["memory", "redis"]


def create_store(settings: Settings) -> Store:
    """Postgres when ``DATABASE_URL`` is set, else SQLite in the data directory."""
    url = settings.store.database_url
    if url.startswith(("postgres://", "postgresql://")):
        from store.postgres import PostgresStore

        return PostgresStore(settings.store)
    if url.startswith("sqlite:///"):
        from store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), settings.store)
    if url:
        raise SettingsError("DATABASE_URL must start with postgresql:// or sqlite:///")
    from store.sqlite import SQLiteStore

    return SQLiteStore(str(settings.data_dir / "livetutor.sqlite3"), settings.store)


@dataclass(frozen=True, slots=True)
class SharedBackends:
    """The parts pods share: in process on embedded defaults, in Redis otherwise."""

    kind: SharedKind
    bus: StreamBus
    ask_limits: AskLimiter
    cache: TwoTierCache
    popular: PopularQuestions
    connection_limits: ConnectionLimits


def shared_kind(settings: Settings) -> SharedKind:
    """``redis`` when Redis (direct or through Sentinel) is configured, else ``memory``."""
    return "redis" if settings.redis.enabled else "memory"


def create_shared(settings: Settings, *, pod: str, metrics: Metrics) -> SharedBackends:
    """The backplane, rate limits, cache, question counts and connection slots, on one side."""
    rate_per_s, burst = settings.ws.ask_rate_per_min / 60, settings.ws.ask_burst
    per_user = settings.ws.max_connections_per_user
    if shared_kind(settings) == "memory":
        return SharedBackends(
            kind="memory",
            bus=MemoryBus(pod=pod),
            ask_limits=TokenBuckets(rate_per_s, burst),
            cache=TwoTierCache(settings.cache, observer=metrics),
            popular=MemoryPopular(min_learners=settings.tutor.popular_min_learners),
            connection_limits=MemoryConnectionLimits(per_user),
        )
    from cache.popular import RedisPopular
    from cache.redis_tier import RedisTier
    from core.redis_link import connect
    from realtime.redis_bus import RedisBus
    from realtime.redis_ratelimit import RedisTokenBuckets

    client = connect(settings.redis)
    return SharedBackends(
        kind="redis",
        bus=RedisBus(settings.redis, pod=pod, observer=metrics, client=client),
        ask_limits=RedisTokenBuckets(client, rate_per_s, burst),
        cache=TwoTierCache(
            settings.cache,
            RedisTier(client, subscriber=connect(settings.redis, retries=0)),
            observer=metrics,
        ),
        popular=RedisPopular(client, min_learners=settings.tutor.popular_min_learners),
        connection_limits=RedisConnectionLimits(
            client, pod=pod, max_per_user=per_user, ttl_s=settings.redis.presence_ttl_s
        ),
    )
