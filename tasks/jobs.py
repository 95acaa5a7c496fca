"""The Celery tasks.

``prefetch_pdf``, ``index_document`` and ``reindex_document`` run
:class:`knowledge.ingest.Ingest` jobs under :mod:`tasks.policy`: transient
failures are retried with exponential backoff and full jitter up to
``LIVETUTOR_TASK_MAX_RETRIES``; permanent ones
(and retries exhausted) go to a dead-letter record and are never retried again
until ``livetutor dlq replay``. Acknowledged late and rejected on worker loss
(see :mod:`tasks.app`), a job whose worker died runs again; the jobs are
idempotent, so that is safe.
"""

from __future__ import annotations

import asyncio
import threading
import time

import structlog
from celery import Task, current_app, shared_task
from celery.exceptions import Retry

from core.settings import Settings
from knowledge.ingest import Ingest
from tasks.app import TASK_PREFIX
from tasks.metrics import current_metrics
from tasks.policy import RetryPolicy

log = structlog.get_logger("livetutor.tasks")
_LOCK = threading.Lock()
_INGEST: dict[str, Ingest] = {}


def settings() -> Settings:
    """The settings the app was made with."""
    configured: Settings = current_app.conf.livetutor_settings
    return configured


def ingest() -> Ingest:
    """This worker's job context, made on first use."""
    with _LOCK:
        made = _INGEST.get("ingest")
        if made is None:
            from core.redis_link import connect_sync
            from tasks.progress import ProgressPublisher

            s = settings()
            made = Ingest.create(s, notify=ProgressPublisher(connect_sync(s.redis)))
            _INGEST["ingest"] = made
        return made


def stop_jobs() -> None:
    """Tell running jobs to stop at their next batch (the worker is shutting down)."""
    made = _INGEST.get("ingest")
    if made is not None:
        made.stopping.set()


def _observe(task: str, outcome: str, seconds: float) -> None:
    metrics = current_metrics()
    if metrics is None:
        return
    metrics.task_seconds.labels(task, outcome).observe(seconds)
    if outcome in ("rejected", "gave_up", "error", "retry"):
        kind = "rejected" if outcome == "rejected" else "error"
        metrics.failures.labels(task, kind).inc()
    if outcome == "retry":
        metrics.retries.labels(task).inc()


def _run_document_job(task: Task, name: str, doc_id: str) -> str:
    job = ingest()
    policy = RetryPolicy.from_settings(settings().knowledge)
    started = time.monotonic()
    attempt = int(task.request.retries or 0)
    try:
        status = job.run(name, doc_id)
    except Exception as exc:
        decision = policy.decide(attempt, exc)
        if decision.outcome == "interrupted":
            # The worker is shutting down (a deploy): hand the job back to the queue now,
            # rather than after the visibility timeout; it starts over (idempotently).
            log.info("task.requeued", task=name, document=doc_id)
            _observe(name, "interrupted", time.monotonic() - started)
            raise task.retry(exc=exc, countdown=0, max_retries=None) from exc
        if decision.transient:
            log.warning("task.failed", task=name, document=doc_id, error=type(exc).__name__)
        if decision.dead_letter:
            job.dead_letter(name, doc_id, decision.reason, decision.attempts)
            _observe(name, decision.outcome, time.monotonic() - started)
            return "failed"
        _observe(name, "retry", time.monotonic() - started)
        raise task.retry(
            exc=exc, countdown=decision.delay_s, max_retries=policy.max_retries
        ) from exc
    _observe(name, "ok", time.monotonic() - started)
    if status == "ready":
        record = job.kb.get_document(doc_id)
        if record is not None:
            # The new index version retired the course's cached answers: warm them again.
            current_app.send_task(f"{TASK_PREFIX}regenerate_cache", args=[record.course])
    return status


@shared_task(bind=True, name="livetutor.prefetch_pdf")
def prefetch_pdf(self: Task, doc_id: str) -> str:
    """Fetch a registered URL under the SSRF rules, then index it."""
    return _run_document_job(self, "prefetch_pdf", doc_id)


@shared_task(bind=True, name="livetutor.index_document")
def index_document(self: Task, doc_id: str) -> str:
    """Extract, chunk, embed and store a document's chunks, reporting progress."""
    return _run_document_job(self, "index_document", doc_id)


@shared_task(bind=True, name="livetutor.reindex_document")
def reindex_document(self: Task, doc_id: str) -> str:
    """Embed a ready document again with this worker's embedders (``current`` if it was)."""
    return _run_document_job(self, "reindex_document", doc_id)


@shared_task(bind=True, name="livetutor.cleanup_sessions")
def cleanup_sessions(self: Task) -> dict[str, int]:
    """Prune presence, stale running-stream ids and journals without a TTL."""
    from core.redis_link import connect_sync
    from tasks.cleanup import cleanup

    s = settings()
    started = time.monotonic()
    try:
        report = cleanup(connect_sync(s.redis), s.redis.journal_ttl_s)
    except Retry:
        raise
    except Exception:
        _observe("cleanup_sessions", "error", time.monotonic() - started)
        raise
    _observe("cleanup_sessions", "ok", time.monotonic() - started)
    log.info(
        "cleanup.done",
        presence_removed=report.presence_removed,
        running_removed=report.running_removed,
        journals_expired=report.journals_expired,
    )
    return {
        "presence_removed": report.presence_removed,
        "running_removed": report.running_removed,
        "journals_expired": report.journals_expired,
    }


@shared_task(bind=True, name="livetutor.regenerate_cache")
def regenerate_cache(self: Task, course: str | None = None) -> dict[str, int]:
    """Generate the answers to the most asked questions of ``course`` (all when None)."""
    from tasks.warming import regenerate

    started = time.monotonic()
    try:
        reports = asyncio.run(regenerate(settings(), ingest(), course))
    except Exception:
        _observe("regenerate_cache", "error", time.monotonic() - started)
        raise
    _observe("regenerate_cache", "ok", time.monotonic() - started)
    totals = {
        "courses": len(reports),
        "generated": sum(r.generated for r in reports),
        "already_cached": sum(r.already_cached for r in reports),
        "failed": sum(r.failed for r in reports),
    }
    log.info("cache.regenerated", course=course or "*", **totals)
    return totals
