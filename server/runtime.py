"""Everything a running pod holds, opened in the lifespan and handed out from there.

:class:`Runtime` picks each implementation in one place (store, LLM
provider, retriever, document jobs), owns the background tasks and the live connections,
and knows how to drain: refuse new work, tell clients to reconnect, let
running streams finish within ``drain_s``, then close with 1012.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING

import structlog

from cache.answers import AnswerCache
from cache.popular import MemoryPopular, PopularQuestions
from cache.retrieval import CachedRetriever
from cache.two_tier import TwoTierCache
from cache.warm import WarmReport, warm_answers
from realtime import protocol as p
from realtime.protocol import CloseCode
from realtime.streams import MemoryBus, StreamBus
from server.auth import TokenCodec, load_secret
from server.courses import CourseKnowledge, InProcessJobs
from server.llm import LLMProvider
from server.llm_offline import OfflineProvider
from server.metrics import Metrics
from server.ratelimit import AskLimiter, TokenBuckets
from server.retrieval import Retriever
from server.settings import Settings
from server.store import Store, create_store
from server.taskset import TaskSet
from server.tutor import Tutor

if TYPE_CHECKING:
    from server.connection import Connection

log = structlog.get_logger("livetutor.runtime")


def create_bus(settings: Settings, pod: str, metrics: Metrics) -> StreamBus:
    """Redis (direct or through Sentinel) when configured, else in process."""
    if settings.redis.enabled:
        from realtime.redis_bus import RedisBus

        return RedisBus(settings.redis, pod=pod, observer=metrics)
    return MemoryBus(pod=pod)


def create_ask_limiter(settings: Settings, bus: StreamBus) -> AskLimiter:
    """Per-user ask buckets: in Redis when the bus is, else in process."""
    rate_per_s, burst = settings.ws.ask_rate_per_min / 60, settings.ws.ask_burst
    if settings.redis.enabled:
        from realtime.redis_bus import RedisBus
        from realtime.redis_ratelimit import RedisTokenBuckets

        if isinstance(bus, RedisBus):
            return RedisTokenBuckets(bus.redis, rate_per_s, burst)
    return TokenBuckets(rate_per_s, burst)


def create_cache(settings: Settings, bus: StreamBus, metrics: Metrics) -> TwoTierCache:
    """L1 in process, with an L2 in the bus's Redis when the bus runs on Redis."""
    if settings.redis.enabled:
        from cache.redis_tier import RedisTier
        from realtime.redis_bus import RedisBus

        if isinstance(bus, RedisBus):
            return TwoTierCache(settings.cache, RedisTier(bus.redis), observer=metrics)
    return TwoTierCache(settings.cache, observer=metrics)


def create_popular(settings: Settings, bus: StreamBus) -> PopularQuestions:
    """Question counts in the bus's Redis when there is one, else in process."""
    if settings.redis.enabled:
        from cache.popular import RedisPopular
        from realtime.redis_bus import RedisBus

        if isinstance(bus, RedisBus):
            return RedisPopular(bus.redis)
    return MemoryPopular()


def create_provider(settings: Settings) -> LLMProvider:
    """The configured LLM provider: OpenAI-compatible when set up, else the offline tutor."""
    if settings.llm_provider == "openai":
        from server.llm_openai import OpenAIProvider

        return OpenAIProvider(settings.llm)
    return OfflineProvider(settings.llm)


class Runtime:
    """The pod's resources and live state."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        retriever: Retriever | None = None,
        provider: LLMProvider | None = None,
        cache: TwoTierCache | None = None,
    ) -> None:
        self.settings = settings
        self.pod = settings.pod_name or f"{socket.gethostname()}-{os.getpid()}"
        self.codec = TokenCodec(load_secret(settings), settings.auth.jwt_issuer)
        self.store = store or create_store(settings)
        self.provider = provider or create_provider(settings)
        self.fallback = OfflineProvider(settings.llm)
        self.metrics = Metrics()
        self.bus = create_bus(settings, self.pod, self.metrics)
        self.tasks = TaskSet()
        self.popular = create_popular(settings, self.bus)
        self.courses = CourseKnowledge(
            settings, bus=self.bus, metrics=self.metrics, tasks=self.tasks, popular=self.popular
        )
        self.cache = cache or create_cache(settings, self.bus, self.metrics)
        base = retriever or self.courses.retriever
        enabled = settings.cache.enabled
        self.retriever: Retriever = CachedRetriever(base, self.cache) if enabled else base
        self.answers = AnswerCache(self.cache) if enabled and settings.cache.answers else None
        if self.answers is not None and isinstance(self.courses.jobs, InProcessJobs):
            # Celery workers warm the cache themselves after indexing (tasks.jobs).
            self.courses.on_changed = self.warm_soon
        self.ask_limits = create_ask_limiter(settings, self.bus)
        self.connections: set[Connection] = set()
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        self.draining = False
        self.tutor = Tutor(
            settings,
            store=self.store,
            retriever=self.retriever,
            provider=self.provider,
            fallback=self.fallback,
            bus=self.bus,
            pod=self.pod,
            metrics=self.metrics,
            tasks=self.tasks,
            answers=self.answers,
            popular=self.popular,
        )

    def warm_soon(self, course: str) -> None:
        """Generate the answers to the course's most asked questions, in the background."""
        self.tasks.spawn(self.warm(course), name=f"warm-{course}")

    async def warm(self, course: str) -> WarmReport | None:
        """Generate and cache the answers to the course's most asked questions now."""
        if self.answers is None:
            return None
        return await warm_answers(
            course,
            retriever=self.retriever,
            provider=self.provider,
            answers=self.answers,
            popular=self.popular,
            limit=self.settings.cache.warm_questions,
            top_k=self.settings.tutor.top_k,
        )

    def add_connection(self, conn: Connection) -> None:
        """Track a live connection."""
        self.connections.add(conn)
        self.metrics.ws_active.set(len(self.connections))
        self._no_connections.clear()

    def remove_connection(self, conn: Connection) -> None:
        """Forget a closed connection."""
        self.connections.discard(conn)
        self.metrics.ws_active.set(len(self.connections))
        if not self.connections:
            self._no_connections.set()

    def _watch(self) -> None:
        self.metrics.ws_capacity.set(self.settings.ws.max_connections)
        self.metrics.watch_backplane(self.bus.problem)
        breaker = getattr(self.provider, "breaker", None)
        if breaker is not None:
            self.metrics.watch_breaker(lambda: str(breaker.state))

    async def start(self) -> None:
        """Open the store (applying migrations)."""
        await self.store.open()
        await self.bus.start(self.tutor)
        await self.cache.start()
        await self.courses.start()
        self._watch()
        log.info(
            "runtime.started",
            pod=self.pod,
            provider=self.provider.name,
            store=type(self.store).__name__,
        )

    async def drain(self) -> None:
        """Stop taking work, send ``reconnect``, let streams finish, close with 1012."""
        if self.draining:
            return
        self.draining = True
        drain_s = self.settings.drain_s
        log.info("runtime.draining", connections=len(self.connections), streams=self.tutor.running)
        notice = p.reconnect("pod restarting", after_ms=int(drain_s * 1000))
        for conn in list(self.connections):
            conn.send(notice)
        if not await self.tutor.wait_idle(drain_s):
            self.tutor.stop_all("interrupted")
            await self.tutor.wait_idle(1.0)
        for conn in list(self.connections):
            conn.close(CloseCode.SERVICE_RESTART, "service restart")
        try:
            async with asyncio.timeout(self.settings.ws.close_timeout_s + 1):
                await self._no_connections.wait()
        except TimeoutError:
            log.warning("runtime.drain_timeout", connections=len(self.connections))

    async def stop(self) -> None:
        """Cancel what is left and release resources."""
        self.tutor.stop_all("interrupted")
        await self.tasks.cancel_all(timeout_s=5.0)
        await self.provider.aclose()
        await self.cache.stop()
        await self.courses.stop()
        await self.bus.stop()
        await self.store.close()
        log.info("runtime.stopped", pod=self.pod)
