"""Course documents on a pod: the knowledge stores, the retriever, predictions, jobs.

:class:`CourseKnowledge` opens the vector store and file store, owns the
:class:`~knowledge.retriever.CourseRetriever` the tutor uses, answers typing
predictions, and hands document jobs to the runner
:func:`~tasks.runners.create_jobs` chooses (in process, or the Celery workers);
a stopped embedded pod resumes the jobs it left unfinished.

Progress reaches the uploader as ``document.progress`` frames over the bus: on
the session named at upload (if it is the uploader's) and on the uploader's own
channel, which every instructor and admin connection joins.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import structlog

from cache.popular import PopularQuestions
from core.keys import user_channel
from core.metrics import Metrics
from core.settings import Settings
from core.taskset import TaskSet
from core.text import normalise
from knowledge.demo_course import DEMO_COURSE, demo_passages, demo_retriever
from knowledge.ingest import Ingest
from knowledge.predictions import PhraseIndex
from knowledge.retriever import CourseRetriever
from knowledge.vectors import DocumentRecord
from realtime import protocol
from realtime.streams import StreamBus
from tasks.runners import create_jobs

log = structlog.get_logger("livetutor.courses")
# Chunks read per course to build its prediction phrases.
_PREDICTION_SAMPLE = 20_000


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
        if self.jobs.kind == "inprocess":
            for record in await asyncio.to_thread(self.ingest.kb.unfinished):
                log.info("document.resumed", document=record.id, status=record.status)
                self.jobs.submit("prefetch_pdf" if record.url else "index_document", record.id)
        if self.settings.redis.enabled:
            self._tasks.spawn(self._refresh_loop(), name="courses-refresh")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop job threads between batches (they resume at the next start), close the store."""
        self.ingest.stopping.set()
        self.retriever.close()
        if not await self.jobs.wait_idle(timeout_s):
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
        frame = protocol.document_progress(
            record.id, record.course, record.status, record.progress, record.reason
        )
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
            cache = self.settings.cache
            if cache.enabled and cache.answers:
                # Most asks are then shared, and a shared ask retrieves the normalised question.
                text = normalise(text)
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

    def forget_questions(self, course: str) -> None:
        """Drop the course's asked questions read so far (one was removed): re-read on next use."""
        self._questions.pop(course, None)

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
            # Only shared questions: asked alike by enough learners, no personal data, not removed.
            top = await self._popular.top(course, _QUESTIONS_PER_COURSE)
        except Exception as exc:
            log.warning("predictions.questions_unavailable", error=type(exc).__name__)
            return
        # Asked questions outrank headings (weights 3-5) and grow with how often they are asked.
        index = PhraseIndex.from_phrases((q, 6.0 + math.log(count)) for q, count in top if count)
        if course in self._questions:  # not forgotten (a removal) while reading
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
