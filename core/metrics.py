"""Prometheus metrics of one pod, in a registry of its own.

Every metric a pod exports is defined here, with buckets chosen for its real
range: sub-millisecond for the backplane, seconds for answers. Labels take
values from small fixed sets (frame types, outcomes, route templates), never
from ids, so cardinality stays bounded however many sessions pass through.
``monitoring/`` holds the alert rules and dashboards built on these names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
_ANSWER_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 240.0)
_PREDICTION_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.1,
)
# How late the loop runs a timer: a healthy loop sits in the first buckets; the coalescer's
# window stops widening at LIVETUTOR_FLUSH_MAX_MS (100 ms), the alert fires above 0.1 s.
_LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    """The pod's metrics; ``render()`` is the body of ``GET /metrics``."""

    def __init__(
        self, *, client_types: Sequence[str] = (), server_types: Sequence[str] = ()
    ) -> None:
        """``client_types`` and ``server_types`` are the frame types counted by name."""
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        self.ws_active = Gauge(
            "websocket_active_connections", "Open WebSocket connections", registry=r
        )
        self.ws_capacity = Gauge(
            "websocket_connection_capacity",
            "Connections this pod is sized for (LIVETUTOR_MAX_CONNECTIONS)",
            registry=r,
        )
        self.ws_connections = Counter(
            "websocket_connections", "WebSocket handshakes by outcome", ["outcome"], registry=r
        )
        self.ws_messages = Counter(
            "websocket_messages", "Frames by direction and type", ["direction", "type"], registry=r
        )
        self.slow_consumers = Counter(
            "slow_consumer_disconnects",
            "Connections closed because the client stopped reading",
            registry=r,
        )
        self.answer_seconds = Histogram(
            "answer_generation_seconds",
            "Whole answer, from ask to stream.end",
            buckets=_ANSWER_BUCKETS,
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "time_to_first_token_seconds",
            "From ask to the first delta",
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("tokens_streamed", "Model tokens streamed to learners", registry=r)
        # Frames per token: rate(delta_frames_total) / rate(tokens_streamed_total).
        self.delta_frames = Counter(
            "delta_frames",
            "delta frames coalesced from model tokens, counted when their stream ends",
            registry=r,
        )
        self.flush_window_seconds = Gauge(
            "flush_window_seconds",
            "How long a delta opened now waits for more tokens (widens with event-loop lag)",
            registry=r,
        )
        self.loop_lag_seconds = Histogram(
            "event_loop_lag_seconds",
            "How late the event loop ran a timer, sampled every 50 ms",
            buckets=_LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.answers = Counter("answers", "Answers by how they ended", ["reason"], registry=r)
        self.attempts = Counter(
            "problem_attempts",
            "Learners' attempts at course problems, by grade",
            ["grade"],
            registry=r,
        )
        self.hint_guard_withheld = Counter(
            "hint_guard_withheld",
            "Hint sentences the stream guard kept back, by what they gave away",
            ["reason"],
            registry=r,
        )
        self.llm_requests = Counter(
            "llm_requests", "Model requests by outcome", ["provider", "outcome"], registry=r
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state",
            "LLM circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=r,
        )
        self.retrieval_seconds = Histogram(
            "retrieval_seconds", "Course passage retrieval", buckets=_FAST_BUCKETS, registry=r
        )
        self.publish_seconds = Histogram(
            "backplane_publish_seconds",
            "One pipelined batch of journal writes and publishes to Redis",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.delivery_lag_seconds = Histogram(
            "backplane_delivery_lag_seconds",
            "From publish on one pod to delivery on another",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.backplane_up = Gauge(
            "backplane_up", "1 when the backplane can serve (always 1 in process)", registry=r
        )
        self.resumes = Counter(
            "stream_resumes", "resume frames by outcome", ["outcome"], registry=r
        )
        self.takeovers = Counter(
            "stream_takeovers", "Streams finished for a pod that died", registry=r
        )
        self.failovers = Counter("redis_failovers", "Redis master changes seen", registry=r)
        self.cache_hits = Counter(
            "cache_hits", "Cache hits by cache and tier (l1, l2)", ["cache", "tier"], registry=r
        )
        self.cache_misses = Counter(
            "cache_misses", "Lookups found in neither tier", ["cache"], registry=r
        )
        self.cache_load_seconds = Histogram(
            "cache_load_seconds",
            "Computing a value that was not cached",
            ["cache"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.cache_rejects = Counter(
            "cache_rejected", "Values not cached: over the size cap", ["cache"], registry=r
        )
        self.cache_errors = Counter(
            "cache_errors", "L2 (Redis) cache operations that failed", ["operation"], registry=r
        )
        self.http_requests = Counter(
            "http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self._cache_hit_children: dict[tuple[str, str], Counter] = {}
        self.prediction_seconds = Histogram(
            "prediction_latency_seconds",
            "Typing predictions, from typing frame to predictions frame",
            buckets=_PREDICTION_BUCKETS,
            registry=r,
        )
        self.document_jobs = Counter(
            "document_jobs",
            "Document jobs run in this pod (embedded mode) by task and outcome",
            ["task", "outcome"],
            registry=r,
        )
        self.documents_uploaded = Counter(
            "documents_uploaded",
            "Documents accepted by POST /courses/{course}/documents",
            ["source"],
            registry=r,
        )
        # Children for the per-frame path, bound once.
        self.frames_in = {t: self.ws_messages.labels("in", t) for t in (*client_types, "invalid")}
        self.frames_out = {t: self.ws_messages.labels("out", t) for t in server_types}

    def frame_out(self, kind: str) -> None:
        """Count a frame sent to a client."""
        child = self.frames_out.get(kind)
        if child is not None:
            child.inc()

    def frame_in(self, kind: str) -> None:
        """Count a frame received (``invalid`` when it did not parse)."""
        self.frames_in.get(kind, self.frames_in["invalid"]).inc()

    def watch_breaker(self, state: Callable[[], str]) -> None:
        """Read the breaker's state at each scrape."""
        self.breaker_state.set_function(lambda: BREAKER_STATES.get(state(), 0))

    def watch_backplane(self, problem: Callable[[], str | None]) -> None:
        """Read the backplane's health at each scrape."""
        self.backplane_up.set_function(lambda: 0 if problem() else 1)

    def watch_flush_window(self, window_s: Callable[[], float]) -> None:
        """Read the coalescer's current flush window at each scrape."""
        self.flush_window_seconds.set_function(window_s)

    def loop_lag(self, lag_s: float) -> None:
        """The event loop ran a timer ``lag_s`` late (see realtime.loop_lag.LoopLag)."""
        self.loop_lag_seconds.observe(lag_s)

    def coalesced(self, frames: int) -> None:
        """A stream's coalescer made ``frames`` delta frames (see realtime.coalesce.Coalescer)."""
        self.delta_frames.inc(frames)

    # The bus reports through these (see realtime.streams.BusObserver).

    def published(self, seconds: float) -> None:
        """A batch of backplane writes took ``seconds``."""
        self.publish_seconds.observe(seconds)

    def delivered(self, lag_s: float) -> None:
        """A frame from another pod arrived ``lag_s`` after it was published."""
        self.delivery_lag_seconds.observe(max(lag_s, 0.0))

    def failover(self) -> None:
        """The Redis master changed."""
        self.failovers.inc()

    def takeover(self) -> None:
        """This pod took over a stream."""
        self.takeovers.inc()

    # The cache reports through these (see cache.two_tier.CacheObserver).

    def cache_hit(self, namespace: str, tier: str) -> None:
        """A value was found in ``tier``."""
        child = self._cache_hit_children.get((namespace, tier))
        if child is None:
            child = self._cache_hit_children[namespace, tier] = self.cache_hits.labels(
                namespace, tier
            )
        child.inc()

    def cache_miss(self, namespace: str) -> None:
        """A value was in neither tier."""
        self.cache_misses.labels(namespace).inc()

    def cache_load(self, namespace: str, seconds: float) -> None:
        """A missing value took ``seconds`` to compute."""
        self.cache_load_seconds.labels(namespace).observe(seconds)

    def cache_rejected(self, namespace: str) -> None:
        """A value over the size cap was not cached."""
        self.cache_rejects.labels(namespace).inc()

    def cache_error(self, operation: str) -> None:
        """An L2 operation failed."""
        self.cache_errors.labels(operation).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def exported_names(metrics: Metrics | None = None) -> set[str]:
    """Every sample name the pod exports (``_total``, ``_bucket``, … included)."""
    return registry_names((metrics or Metrics()).registry)


def registry_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry exports (``_total``, ``_bucket``, … included)."""
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}{s}" for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
        names |= {sample.name for sample in family.samples}
    return names
