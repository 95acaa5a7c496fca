"""``livetutor reindex``: embed every ready document of a course (or all) again, as jobs.

Run after changing the embedder (``LIVETUTOR_EMBEDDER``, ``LIVETUTOR_HYBRID``): a
course's chunks live in one collection per embedder, and a course is only searched
with the embedder it was indexed with. :func:`plan` lists the ready documents;
:func:`run_reindex` runs one ``reindex_document`` job per document where the
other document jobs run (:func:`~tasks.runners.jobs_kind`): on the Celery workers
when configured, else in this process through :class:`~tasks.runners.InProcessJobs`,
under the same retry and dead-letter policy. It follows them through the document
registry until each has ended, reporting each document's progress to a callback.

Safe to run again: a job skips a document whose chunks are already all under the
configured embedders (``current``), so a second run only finishes what the first
left (a stopped worker, a failed document after ``livetutor dlq replay``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from core.errors import KnowledgeError
from core.metrics import Metrics
from core.settings import Settings
from core.taskset import TaskSet
from knowledge.vectors import DocumentRecord, KnowledgeBase
from tasks.runners import InProcessJobs, jobs_kind

log = structlog.get_logger("livetutor.tasks")
TASK = "reindex_document"
# How often the registry (and the Celery results) are read while jobs run.
POLL_S = 0.5
# How long an interrupted in-process run waits for its job to stop.
_STOP_S = 30.0


class UnknownCourse(KnowledgeError):
    """``--course`` names a course the vector store does not know."""


@dataclass(slots=True)
class Item:
    """One document being re-indexed: its record as last read, and how its job ended."""

    record: DocumentRecord
    outcome: str = ""


def plan(kb: KnowledgeBase, course: str | None = None) -> list[DocumentRecord]:
    """The ready documents of ``course`` (every course when None), course by course."""
    courses = kb.course_names()
    if course is not None:
        if course not in courses:
            known = ", ".join(courses) if courses else "none yet"
            raise UnknownCourse(f"no course {course!r} in the vector store (courses: {known})")
        courses = [course]
    return [d for name in courses for d in kb.documents(name) if d.status == "ready"]


async def run_reindex(
    settings: Settings,
    kb: KnowledgeBase,
    records: list[DocumentRecord],
    on_progress: Callable[[Item], None],
    *,
    poll_s: float = POLL_S,
) -> list[Item]:
    """Re-index ``records`` as jobs; ``on_progress`` sees each change; returns how each ended."""
    items = [Item(record) for record in records]
    if not items:
        return items
    if jobs_kind(settings) == "celery":
        results = await asyncio.to_thread(_send_all, settings, items)

        async def outcome(item: Item) -> str:
            return await asyncio.to_thread(_celery_outcome, results[item.record.id])

        await _follow(kb, items, outcome, on_progress, poll_s)
        return items
    from knowledge.ingest import Ingest

    tasks = TaskSet()
    ingest = Ingest.create(settings, kb=kb)
    jobs = InProcessJobs(ingest, settings, tasks, Metrics())
    # One held task per document; they run one at a time (LIVETUTOR_INPROCESS_JOBS).
    running = {item.record.id: tasks.spawn(jobs.run(TASK, item.record.id)) for item in items}

    async def finished(item: Item) -> str:
        task = running[item.record.id]
        return task.result() if task.done() else ""

    try:
        await _follow(kb, items, finished, on_progress, poll_s)
    finally:
        # Interrupted (Ctrl-C): running jobs stop at their next batch; a later run finishes.
        ingest.stopping.set()
        await tasks.cancel_all(timeout_s=_STOP_S)
        await jobs.wait_idle(_STOP_S)
    return items


async def _follow(
    kb: KnowledgeBase,
    items: list[Item],
    outcome: Callable[[Item], Awaitable[str]],
    on_progress: Callable[[Item], None],
    poll_s: float,
) -> None:
    """Read each unfinished document's record until its job has ended, reporting changes."""
    seen: dict[str, tuple[str, float, int]] = {}
    while True:
        for item in items:
            if item.outcome:
                continue
            current = await asyncio.to_thread(kb.get_document, item.record.id)
            if current is not None:
                item.record = current
            ended = await outcome(item)
            state = (item.record.status, round(item.record.progress, 2), item.record.chunks)
            if ended:
                item.outcome = ended
                on_progress(item)
            elif seen.get(item.record.id) != state:
                seen[item.record.id] = state
                on_progress(item)
        if all(item.outcome for item in items):
            return
        await asyncio.sleep(poll_s)


def _send_all(settings: Settings, items: list[Item]) -> dict[str, Any]:
    from tasks.app import TASK_PREFIX, create_celery

    celery = create_celery(settings)
    results = {}
    for item in items:
        results[item.record.id] = celery.send_task(f"{TASK_PREFIX}{TASK}", args=[item.record.id])
        log.info("reindex.queued", document=item.record.id, course=item.record.course)
    return results


def _celery_outcome(result: Any) -> str:
    """The task's return value once it has one; "" while it waits or runs."""
    if not result.ready():
        return ""
    if result.successful():
        return str(result.result)
    # The task raised past the retry policy (a bug, or its worker's time limit).
    return "failed"


__all__ = ["Item", "UnknownCourse", "plan", "run_reindex"]
