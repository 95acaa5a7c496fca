"""Course documents on a pod: the knowledge stores, the retriever, predictions, jobs.

:class:`CourseKnowledge` opens the vector store and file store, owns the
:class:`~knowledge.retriever.CourseRetriever` the tutor uses, answers typing
predictions, and hands document jobs to one of two runners chosen in one place
(:func:`create_jobs`):

- :class:`InProcessJobs` (embedded default): the same job functions the Celery
  workers run, in threads off the event loop, at most ``LIVETUTOR_INPROCESS_JOBS``
  at once, with the same retry and dead-letter rules;
- :class:`CeleryJobs` (production): sent to the Celery workers through Redis.

Progress reaches the uploader as ``document.progress`` frames over the bus: on
the session named at upload (if it is the uploader's) and on the uploader's own
channel, which every instructor and admin connection joins.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from cache.popular import PopularQuestions
from core.errors import DocumentRejected
from core.metrics import Metrics
from core.settings import Settings
from core.taskset import TaskSet
from knowledge.demo_course import DEMO_COURSE, demo_passages, demo_retriever
from knowledge.ingest import Ingest, JobInterrupted, backoff_s, progress_frame, user_channel
from knowledge.predictions import PhraseIndex
from knowledge.retriever import CourseRetriever
from knowledge.vectors import DocumentRecord
from realtime.streams import StreamBus

log = structlog.get_logger("livetutor.courses")
# Chunks read per course to build its prediction phrases.
_PREDICTION_SAMPLE = 20_000


class Jobs(Protocol):
    """Runs document jobs somewhere."""

    def submit(self, task: str, doc_id: str) -> None:
        """Run ``task`` for the document (never blocks the caller)."""
        ...


class InProcessJobs:
    """Document jobs in this process, in threads, with retries and dead letters."""

    def __init__(self, ingest: Ingest, settings: Settings, tasks: TaskSet, metrics: Metrics):
        self._ingest = ingest
        self._settings = settings.knowledge
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
        self._tasks.spawn(self._run(task, doc_id), name=f"job-{task}-{doc_id}")

    async def _run(self, task: str, doc_id: str) -> None:
        k = self._settings
        async with self._slots:
            for attempt in range(k.task_max_retries + 1):
                try:
                    await self._run_thread(task, doc_id)
                    self._metrics.document_jobs.labels(task, "ok").inc()
                    return
                except JobInterrupted:
                    log.info("job.interrupted", task=task, document=doc_id)
                    return
                except DocumentRejected as exc:
                    self._metrics.document_jobs.labels(task, "rejected").inc()
                    await asyncio.to_thread(
                        self._ingest.dead_letter, task, doc_id, exc.reason, attempt + 1
                    )
                    return
                except Exception as exc:
                    log.warning("job.failed", task=task, document=doc_id, error=type(exc).__name__)
                    if attempt == k.task_max_retries:
                        self._metrics.document_jobs.labels(task, "gave_up").inc()
                        reason = f"gave up after {attempt + 1} attempts ({type(exc).__name__})"
                        await asyncio.to_thread(
                            self._ingest.dead_letter, task, doc_id, reason, attempt + 1
                        )
                        return
                    self._metrics.document_jobs.labels(task, "retry").inc()
                    await asyncio.sleep(backoff_s(attempt, k.task_backoff_s, k.task_backoff_max_s))


class CeleryJobs:
    """Document jobs sent to the Celery workers."""

    def __init__(self, settings: Settings, tasks: TaskSet) -> None:
        from tasks.app import create_celery

        self._celery = create_celery(settings)
        self._tasks = tasks

    def submit(self, task: str, doc_id: str) -> None:
        """Send the job (the broker round trip runs in a thread)."""
        self._tasks.spawn(self._send(task, doc_id), name=f"send-{task}-{doc_id}")

    async def _send(self, task: str, doc_id: str) -> None:
        await asyncio.to_thread(self._celery.send_task, f"livetutor.{task}", args=[doc_id])


def create_jobs(settings: Settings, ingest: Ingest, tasks: TaskSet, metrics: Metrics) -> Jobs:
    """Celery when configured (``auto``: when Redis is), else in process."""
    mode = settings.knowledge.jobs
    if mode == "celery" or (mode == "auto" and settings.redis.enabled):
        return CeleryJobs(settings, tasks)
    return InProcessJobs(ingest, settings, tasks, metrics)


MAX_PREDICTIONS = 5
# How long a course's most asked questions are used before they are read again.
_QUESTIONS_TTL_S = 30.0
_QUESTIONS_PER_COURSE = 200
_NO_PHRASES = PhraseIndex()


class CourseKnowledge:
    """The pod's side of course documents."""

    def __init__(
        self,
        settings: Settings,
        *,
        bus: StreamBus,
        metrics: Metrics,
        tasks: TaskSet,
        popular: PopularQuestions | None = None,
    ) -> None:
        self.settings = settings
        self._bus = bus
        self._tasks = tasks
        self._popular = popular
        # Called with a course whose content changed here (a document is ready).
        self.on_changed: Callable[[str], None] | None = None
        # Per course: when its most asked questions were read, and them as phrases.
        self._questions: dict[str, tuple[float, PhraseIndex]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ingest = Ingest.create(settings, notify=self._notify_threadsafe)
        self.retriever = CourseRetriever(
            self.ingest.kb, self.ingest.embedder, self.ingest.lexical, demo=demo_retriever()
        )
        self.jobs = create_jobs(settings, self.ingest, tasks, metrics)
        self._phrases: dict[str, tuple[str, PhraseIndex]] = {
            DEMO_COURSE: ("", PhraseIndex.build((p.heading, p.text) for p in demo_passages()))
        }
        self._building: set[str] = set()

    async def start(self) -> None:
        """Read the course list; re-run jobs a stopped embedded pod left unfinished."""
        self._loop = asyncio.get_running_loop()
        k = self.settings.knowledge
        if self.settings.redis.enabled and not k.chroma_url:
            log.warning(
                "courses.embedded_vector_store",
                advice="with several pods and workers set CHROMA_URL to a chromadb server",
            )
        on_postgres = self.settings.store.database_url.startswith(("postgres://", "postgresql://"))
        if self.settings.redis.enabled and not k.s3_bucket and not on_postgres:
            log.warning(
                "courses.local_files",
                advice="workers on other hosts cannot read uploads; set LIVETUTOR_S3_BUCKET",
            )
        await self.retriever.refresh()
        if isinstance(self.jobs, InProcessJobs):
            for record in await asyncio.to_thread(self.ingest.kb.unfinished):
                log.info("document.resumed", document=record.id, status=record.status)
                self.jobs.submit("prefetch_pdf" if record.url else "index_document", record.id)
        if self.settings.redis.enabled:
            self._tasks.spawn(self._refresh_loop(), name="courses-refresh")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop job threads between batches (they resume at the next start), close the store."""
        self.ingest.stopping.set()
        self.retriever.close()
        if isinstance(self.jobs, InProcessJobs) and not await self.jobs.wait_idle(timeout_s):
            log.warning("courses.jobs_still_running", jobs=self.jobs.running)
            return  # leave the store open for them; the process is ending anyway
        await asyncio.to_thread(self.ingest.kb.close)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.knowledge.courses_refresh_s)
            try:
                await self.retriever.refresh()
            except Exception as exc:
                log.warning("courses.refresh_failed", error=type(exc).__name__)

    # -- progress --------------------------------------------------------------

    def _notify_threadsafe(self, record: DocumentRecord) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        frame = progress_frame(record)
        loop.call_soon_threadsafe(self.publish_progress, record.user, record.session, frame)

    def publish_progress(self, user: str, session: str, frame: dict[str, Any]) -> None:
        """Send a ``document.progress`` frame to the uploader's channel and session."""
        if frame["status"] in ("ready", "failed"):
            self.retriever.forget_version(str(frame["course"]))
            self.retriever.add_course(str(frame["course"]))
            if frame["status"] == "ready" and self.on_changed is not None:
                self.on_changed(str(frame["course"]))
        if user:
            self._bus.publish(user_channel(user), frame)
        if session:
            self._bus.publish(session, frame)

    # -- predictions -----------------------------------------------------------

    def warm(self, course: str, text: str) -> None:
        """Embed a question that looks finished (ends with ?) so its answer starts sooner."""
        text = text.strip()
        if text.endswith("?") and len(text) >= 12:
            self.retriever.warm(course, text)

    def predict(self, course: str, text: str) -> list[str]:
        """Up to five predictions: the course's most asked questions first, then its phrases."""
        entry = self._phrases.get(course)
        if course in self.retriever.stored_courses():
            version = self.retriever.cached_version(course)
            if (entry is None or entry[0] != version) and course not in self._building:
                self._building.add(course)
                self._tasks.spawn(self._build_phrases(course), name=f"phrases-{course}")
        items = self._asked(course).predict(text, MAX_PREDICTIONS)
        if entry is not None and len(items) < MAX_PREDICTIONS:
            seen = {item.lower() for item in items}
            for phrase in entry[1].predict(text, MAX_PREDICTIONS):
                if phrase.lower() not in seen:
                    items.append(phrase)
                    seen.add(phrase.lower())
        return items[:MAX_PREDICTIONS]

    def _asked(self, course: str) -> PhraseIndex:
        """The course's most asked questions as phrases, re-read in the background when old."""
        entry = self._questions.get(course)
        now = time.monotonic()
        if self._popular is not None and (entry is None or now - entry[0] >= _QUESTIONS_TTL_S):
            # Stamped now so that one re-read runs at a time; the old list serves meanwhile.
            self._questions[course] = (now, entry[1] if entry else _NO_PHRASES)
            self._tasks.spawn(self._read_questions(course), name=f"asked-{course}")
        return entry[1] if entry else _NO_PHRASES

    async def _read_questions(self, course: str) -> None:
        if self._popular is None:
            return
        try:
            top = await self._popular.top(course, _QUESTIONS_PER_COURSE)
        except Exception as exc:
            log.warning("predictions.questions_unavailable", error=type(exc).__name__)
            return
        # Asked questions outrank headings (weights 3-5) and grow with how often they are asked.
        index = PhraseIndex.from_phrases((q, 6.0 + math.log(count)) for q, count in top if count)
        self._questions[course] = (time.monotonic(), index)

    async def _build_phrases(self, course: str) -> None:
        try:
            version = await self.retriever.index_version(course)
            started = time.monotonic()
            labels = await asyncio.to_thread(
                self.ingest.kb.chunk_labels,
                course,
                self.ingest.embedder.name,
                _PREDICTION_SAMPLE,
            )
            index = await asyncio.to_thread(PhraseIndex.build, labels)
            self._phrases[course] = (version, index)
            log.info(
                "predictions.built",
                course=course,
                phrases=len(index.phrases),
                elapsed_ms=round((time.monotonic() - started) * 1000, 1),
            )
        finally:
            self._building.discard(course)
