"""What happens after a document job fails: one policy for both runners.

:meth:`RetryPolicy.decide` takes the attempt that failed (0 for the first) and
its exception and returns a :class:`Decision`; it does no I/O. The Celery tasks
(:mod:`tasks.jobs`) and the in-process runner (:mod:`tasks.runners`) only carry
it out:

- :class:`~knowledge.ingest.JobInterrupted` → ``interrupted``: the process is
  stopping; the job runs again (Celery hands it back to the queue, the
  embedded pod resumes it at its next start) and is not counted as an attempt;
- :class:`~core.errors.DocumentRejected` → ``rejected``: permanent, dead-lettered
  with the document's own reason, never retried;
- anything else while retries remain → ``retry`` after :func:`backoff_s`
  seconds (exponential, full jitter), at most ``LIVETUTOR_TASK_MAX_RETRIES``
  times;
- anything else after the last retry → ``gave_up``: dead-lettered with
  ``gave up after N attempts (ExceptionName)``.

The outcomes, with ``ok`` for a job that returned, are the ``outcome`` label
of the job metrics.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from core.errors import DocumentRejected
from core.settings import KnowledgeSettings
from knowledge.ingest import JobInterrupted

Outcome = Literal["retry", "rejected", "gave_up", "interrupted"]


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, base * 2**attempt)]."""
    return random.uniform(0, min(max_s, base_s * (2**attempt)))


def gave_up_reason(attempts: int, exc: BaseException) -> str:
    """The dead-letter reason (shown to instructors) once retries are exhausted."""
    return f"gave up after {attempts} attempts ({type(exc).__name__})"


@dataclass(frozen=True, slots=True)
class Decision:
    """What a runner does with a failed attempt."""

    outcome: Outcome
    # Attempts made so far, this one included (stored with a dead letter).
    attempts: int
    # Wait before the next attempt (``retry`` only).
    delay_s: float = 0.0
    # Why the job was dead-lettered (``rejected`` and ``gave_up`` only).
    reason: str = ""

    @property
    def transient(self) -> bool:
        """The attempt failed in a way a retry may fix (``retry`` or ``gave_up``)."""
        return self.outcome in ("retry", "gave_up")

    @property
    def dead_letter(self) -> bool:
        """The job is over for good: record a dead letter with ``reason``."""
        return self.outcome in ("rejected", "gave_up")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries with exponential backoff and full jitter, then a dead letter."""

    max_retries: int
    backoff_s: float
    backoff_max_s: float

    @classmethod
    def from_settings(cls, settings: KnowledgeSettings) -> RetryPolicy:
        """``LIVETUTOR_TASK_MAX_RETRIES``, ``_BACKOFF_S`` and ``_BACKOFF_MAX_S``."""
        return cls(
            max_retries=settings.task_max_retries,
            backoff_s=settings.task_backoff_s,
            backoff_max_s=settings.task_backoff_max_s,
        )

    def decide(self, attempt: int, exc: BaseException) -> Decision:
        """The outcome of attempt number ``attempt`` (0 first) failing with ``exc``."""
        attempts = attempt + 1
        if isinstance(exc, JobInterrupted):
            return Decision("interrupted", attempts)
        if isinstance(exc, DocumentRejected):
            return Decision("rejected", attempts, reason=exc.reason)
        if attempt >= self.max_retries:
            return Decision("gave_up", attempts, reason=gave_up_reason(attempts, exc))
        delay_s = backoff_s(attempt, self.backoff_s, self.backoff_max_s)
        return Decision("retry", attempts, delay_s=delay_s)
