"""Where document jobs run: two runners behind :class:`Jobs`, chosen in :func:`create_jobs`.

- :class:`InProcessJobs` (``inprocess``, the embedded default): the same job
  functions the Celery workers run, in threads off the event loop, at most
  ``LIVETUTOR_INPROCESS_JOBS`` at once;
- :class:`CeleryJobs` (``celery``, production): sent to the Celery workers
  (:mod:`tasks.jobs`) through Redis.

``LIVETUTOR_JOBS=auto`` is resolved once, by :func:`jobs_kind`: Celery when
Redis is configured. Both follow :mod:`tasks.policy` for retries and dead
letters; the runner's ``kind`` tells callers which one they have.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Literal, Protocol

import structlog

from core.metrics import Metrics
from core.settings import Settings
from core.taskset import TaskSet
from knowledge.ingest import Ingest
from tasks.policy import RetryPolicy

log = structlog.get_logger("livetutor.tasks")

JobsKind = Literal["inprocess", "celery"]


class Jobs(Protocol):
    """Runs document jobs somewhere."""

    @property
    def kind(self) -> JobsKind:
        """``inprocess`` or ``celery``: where the jobs run."""
        ...

    @property
    def running(self) -> int:
        """Jobs executing in this process right now."""
        ...

    def submit(self, task: str, doc_id: str) -> None:
        """Run ``task`` for the document (never blocks the caller)."""
        ...

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the jobs running in this process; False if some still run."""
        ...


class InProcessJobs:
    """Document jobs in this process, in threads, with retries and dead letters."""

    kind: JobsKind = "inprocess"

    def __init__(self, ingest: Ingest, settings: Settings, tasks: TaskSet, metrics: Metrics):
        self._ingest = ingest
        self._policy = RetryPolicy.from_settings(settings.knowledge)
        self._tasks = tasks
        self._metrics = metrics
        self._slots = asyncio.Semaphore(settings.knowledge.inprocess_jobs)
        self._threads = 0
        self._threads_lock = threading.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> int:
        """Jobs executing in threads right now."""
        return self._threads

    def _in_thread(self, task: str, doc_id: str) -> str:
        try:
            return self._ingest.run(task, doc_id)
        finally:
            with self._threads_lock:
                self._threads -= 1
                idle = self._threads == 0
            loop = self._loop
            if idle and loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._idle.set)

    async def _run_thread(self, task: str, doc_id: str) -> str:
        self._loop = asyncio.get_running_loop()
        with self._threads_lock:
            self._threads += 1
        self._idle.clear()
        return await asyncio.to_thread(self._in_thread, task, doc_id)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait for job threads to return (they stop between batches once told to)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def submit(self, task: str, doc_id: str) -> None:
        """Queue the job behind the running ones."""
        self._tasks.spawn(self.run(task, doc_id), name=f"job-{task}-{doc_id}")

    async def run(self, task: str, doc_id: str) -> str:
        """Run the job behind the running ones, with retries; what it returned, or how it ended.

        That is the job's own result (a document status, ``gone`` or ``current``),
        ``failed`` once it is dead-lettered, or ``interrupted`` when the process stops.
        """
        async with self._slots:
            attempt = 0
            while True:
                try:
                    status = await self._run_thread(task, doc_id)
                except Exception as exc:
                    decision = self._policy.decide(attempt, exc)
                    if decision.transient:
                        log.warning(
                            "job.failed", task=task, document=doc_id, error=type(exc).__name__
                        )
                else:
                    self._metrics.document_jobs.labels(task, "ok").inc()
                    return status
                if decision.outcome == "interrupted":
                    # The pod is stopping; the job resumes at its next start.
                    log.info("job.interrupted", task=task, document=doc_id)
                    return "interrupted"
                self._metrics.document_jobs.labels(task, decision.outcome).inc()
                if decision.dead_letter:
                    await asyncio.to_thread(
                        self._ingest.dead_letter, task, doc_id, decision.reason, decision.attempts
                    )
                    return "failed"
                await asyncio.sleep(decision.delay_s)
                attempt += 1


class CeleryJobs:
    """Document jobs sent to the Celery workers."""

    kind: JobsKind = "celery"

    def __init__(self, settings: Settings, tasks: TaskSet) -> None:
        from tasks.app import TASK_PREFIX, create_celery

        self._celery = create_celery(settings)
        self._prefix = TASK_PREFIX
        self._tasks = tasks

    @property
    def running(self) -> int:
        """None: the jobs run on the workers."""
        return 0

    def submit(self, task: str, doc_id: str) -> None:
        """Send the job (the broker round trip runs in a thread)."""
        self._tasks.spawn(self._send(task, doc_id), name=f"send-{task}-{doc_id}")

    async def _send(self, task: str, doc_id: str) -> None:
        await asyncio.to_thread(self._celery.send_task, f"{self._prefix}{task}", args=[doc_id])

    async def wait_idle(self, timeout_s: float) -> bool:
        """Nothing to wait for: the jobs run on the workers."""
        return True


def jobs_kind(settings: Settings) -> JobsKind:
    """``LIVETUTOR_JOBS`` resolved: ``auto`` is Celery when Redis is configured."""
    mode = settings.knowledge.jobs
    if mode == "celery" or (mode == "auto" and settings.redis.enabled):
        return "celery"
    return "inprocess"


def create_jobs(settings: Settings, ingest: Ingest, tasks: TaskSet, metrics: Metrics) -> Jobs:
    """The runner :func:`jobs_kind` names."""
    if jobs_kind(settings) == "celery":
        return CeleryJobs(settings, tasks)
    return InProcessJobs(ingest, settings, tasks, metrics)
