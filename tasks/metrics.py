"""Prometheus metrics of a Celery worker, served on ``LIVETUTOR_WORKER_METRICS_PORT``.

The worker runs its tasks in threads of one process (``--pool threads``), so one
registry sees every task. Labels take task names and fixed outcomes only.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from core.metrics import registry_names

_TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
OUTCOMES = ("ok", "rejected", "retry", "gave_up", "error", "interrupted")


class WorkerMetrics:
    """The worker's metrics in a registry of their own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        self.task_seconds = Histogram(
            "celery_task_duration_seconds",
            "Task run time by task and outcome",
            ["task", "outcome"],
            buckets=_TASK_BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            "celery_task_failures",
            "Task runs that failed, by task and kind (rejected: permanent; error: transient)",
            ["task", "kind"],
            registry=r,
        )
        self.retries = Counter(
            "celery_task_retries", "Task retries scheduled, by task", ["task"], registry=r
        )
        self.dead_letters = Gauge(
            "celery_dead_letters",
            "Jobs in the dead-letter records (livetutor dlq list)",
            registry=r,
        )
        self.queue_length = Gauge(
            "celery_queue_length", "Messages waiting in the broker queue", registry=r
        )

    def watch(self, dead_letters: Callable[[], int], queue_length: Callable[[], int]) -> None:
        """Read the gauges at each scrape."""
        self.dead_letters.set_function(lambda: _safe(dead_letters))
        self.queue_length.set_function(lambda: _safe(queue_length))


_CURRENT: list[WorkerMetrics] = []


def set_current_metrics(metrics: WorkerMetrics) -> None:
    """Make ``metrics`` the running worker's registry (``livetutor worker`` does, at start)."""
    _CURRENT[:] = [metrics]


def current_metrics() -> WorkerMetrics | None:
    """The running worker's metrics (None outside a worker)."""
    return _CURRENT[0] if _CURRENT else None


def _safe(read: Callable[[], int]) -> float:
    try:
        return float(read())
    except Exception:
        return float("nan")


def exported_names(metrics: WorkerMetrics | None = None) -> set[str]:
    """Every sample name a worker exports (``_total``, ``_bucket``, … included)."""
    return registry_names((metrics or WorkerMetrics()).registry)
