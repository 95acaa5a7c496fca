"""Everything a running pod holds, opened in the lifespan and handed out from there.

:class:`Runtime` builds the pod from the implementations :mod:`server.backends`
picks (store, LLM provider, backplane, cache), owns the background tasks and the live connections,
and knows how to drain: refuse new work, tell clients to reconnect, let
running streams finish within ``drain_s``, then close with 1012.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any, Protocol

import structlog

from cache.answers import AnswerCache
from cache.retrieval import CachedRetriever
from cache.two_tier import TwoTierCache
from core.auth import TokenCodec, load_secret
from core.datadir import make_private
from core.metrics import Metrics
from core.retrieval import Retriever
from core.settings import Settings
from core.taskset import TaskSet
from realtime import protocol as p
from realtime.loop_lag import LoopLag
from realtime.protocol import CloseCode
from server.backends import create_provider, create_shared, create_store
from server.courses import CourseKnowledge
from store.store import Store
from tutor.llm import LLMProvider
from tutor.llm_offline import OfflineProvider
from tutor.pipeline import Tutor
from tutor.warming import WarmReport, warm_answers

log = structlog.get_logger("livetutor.runtime")


class Peer(Protocol):
    """A live connection as the runtime sees it (:class:`server.connection.Connection`)."""

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame for the client."""

    def close(self, code: int | None, reason: str = "", *, flush: bool = True) -> None:
        """Close the connection with ``code``."""


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
        # First: everything below may write to the data directory.
        make_private(settings.data_dir)
        self.pod = settings.pod_name or f"{socket.gethostname()}-{os.getpid()}"
        self.codec = TokenCodec(load_secret(settings), settings.auth.jwt_issuer)
        self.store = store or create_store(settings)
        self.provider = provider or create_provider(settings)
        self.fallback = OfflineProvider(settings.llm)
        self.metrics = Metrics(client_types=p.CLIENT_TYPES, server_types=p.SERVER_TYPES)
        shared = create_shared(settings, pod=self.pod, metrics=self.metrics)
        self.bus = shared.bus
        self.tasks = TaskSet()
        self.popular = shared.popular
        self.courses = CourseKnowledge(
            settings, bus=self.bus, metrics=self.metrics, tasks=self.tasks, popular=self.popular
        )
        self.cache = cache or shared.cache
        base = retriever or self.courses.retriever
        enabled = settings.cache.enabled
        self.retriever: Retriever = CachedRetriever(base, self.cache) if enabled else base
        self.answers = AnswerCache(self.cache) if enabled and settings.cache.answers else None
        if self.answers is not None and self.courses.jobs.kind == "inprocess":
            # Celery workers warm the cache themselves after indexing (tasks.jobs).
            self.courses.on_changed = self.warm_soon
        self.ask_limits = shared.ask_limits
        self.connection_limits = shared.connection_limits
        self.connections: set[Peer] = set()
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        self.draining = False
        # Sampling starts with the pod (start); the coalescers read it, the histogram gets it.
        self.loop_lag = LoopLag(observe=self.metrics.loop_lag)
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
            lag=self.loop_lag,
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

    def add_connection(self, conn: Peer) -> None:
        """Track a live connection."""
        self.connections.add(conn)
        self.metrics.ws_active.set(len(self.connections))
        self._no_connections.clear()

    def remove_connection(self, conn: Peer) -> None:
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
        self.metrics.watch_flush_window(self.tutor.flush_window_s)

    async def start(self) -> None:
        """Open the store (applying migrations)."""
        await self.store.open()
        await self.bus.start(self.tutor)
        await self.connection_limits.start()
        await self.cache.start()
        await self.courses.start()
        # The local model loads in the background; readiness waits for it (server.http.ready).
        await self.provider.start()
        self.loop_lag.start()
        self._watch()
        log.info(
            "runtime.started",
            pod=self.pod,
            provider=self.provider.name,
            store=type(self.store).__name__,
            # uvloop's loop is uvloop.Loop; the pure-Python one is asyncio's.
            loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
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
        self.loop_lag.stop()
        self.tutor.stop_all("interrupted")
        await self.tasks.cancel_all(timeout_s=5.0)
        await self.provider.aclose()
        await self.cache.stop()
        await self.courses.stop()
        # Before the bus, which closes the Redis client they share.
        await self.connection_limits.stop()
        await self.bus.stop()
        await self.store.close()
        log.info("runtime.stopped", pod=self.pod)
