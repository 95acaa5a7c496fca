"""The retry policy both job runners follow: outcomes, the retry cap, backoff, reasons."""

from __future__ import annotations

import pytest

from core.errors import DocumentRejected, FetchRefused, KnowledgeUnavailable
from core.settings import Settings
from knowledge.ingest import JobInterrupted
from tasks.policy import RetryPolicy, backoff_s

POLICY = RetryPolicy(max_retries=5, backoff_s=2.0, backoff_max_s=300.0)


def test_transient_error_is_retried_after_a_backoff() -> None:
    """A transient failure with retries left is retried after a delay within the backoff cap."""
    decision = POLICY.decide(0, KnowledgeUnavailable("vector store down"))
    assert decision.outcome == "retry"
    assert decision.transient and not decision.dead_letter
    assert decision.attempts == 1
    assert 0.0 <= decision.delay_s <= 2.0
    assert decision.reason == ""


@pytest.mark.parametrize("attempt", [0, 3, 5, 9])
def test_permanent_error_is_dead_lettered_with_its_own_reason(attempt: int) -> None:
    """A rejected document is dead-lettered at once with its reason, whatever the attempt."""
    decision = POLICY.decide(attempt, DocumentRejected("the file is encrypted"))
    assert decision.outcome == "rejected"
    assert decision.dead_letter and not decision.transient
    assert decision.reason == "the file is encrypted"
    assert decision.attempts == attempt + 1
    assert decision.delay_s == 0.0


def test_refused_url_is_rejected_not_retried() -> None:
    """An SSRF refusal is a permanent failure like any other rejection."""
    decision = POLICY.decide(0, FetchRefused("the address is not public"))
    assert decision.outcome == "rejected"
    assert decision.reason == "the address is not public"


def test_interrupted_job_is_neither_retried_nor_dead_lettered() -> None:
    """A job stopped by shutdown is handed back, not counted as a failure."""
    decision = POLICY.decide(5, JobInterrupted("stopping"))
    assert decision.outcome == "interrupted"
    assert not decision.dead_letter and not decision.transient


def test_retries_stop_at_the_cap_then_the_job_gives_up() -> None:
    """Exactly max_retries retries, then a dead letter counting every attempt."""
    outcomes = [POLICY.decide(attempt, ConnectionError()).outcome for attempt in range(6)]
    assert outcomes == ["retry"] * 5 + ["gave_up"]
    last = POLICY.decide(5, ConnectionError())
    assert last.dead_letter and last.transient
    assert last.attempts == 6
    assert last.reason == "gave up after 6 attempts (ConnectionError)"


def test_no_retries_gives_up_on_the_first_failure() -> None:
    """With LIVETUTOR_TASK_MAX_RETRIES=0 the first transient failure is a dead letter."""
    decision = RetryPolicy(max_retries=0, backoff_s=2.0, backoff_max_s=300.0).decide(
        0, KnowledgeUnavailable("down")
    )
    assert decision.outcome == "gave_up"
    assert decision.reason == "gave up after 1 attempts (KnowledgeUnavailable)"


def test_gave_up_reason_names_the_exception_class() -> None:
    """The reason shown to instructors names the last error's class, not its message."""
    decision = RetryPolicy(max_retries=2, backoff_s=0.01, backoff_max_s=1.0).decide(
        2, KnowledgeUnavailable("http://internal:9000 refused")
    )
    assert decision.reason == "gave up after 3 attempts (KnowledgeUnavailable)"


@pytest.mark.parametrize("attempt", [0, 1, 4, 7])
def test_backoff_stays_within_zero_and_the_doubled_base(attempt: int) -> None:
    """Every delay lies in [0, min(max, base * 2**attempt)]."""
    cap = min(300.0, 2.0 * 2**attempt)
    delays = [backoff_s(attempt, 2.0, 300.0) for _ in range(500)]
    assert all(0.0 <= d <= cap for d in delays)


def test_backoff_is_capped_by_the_maximum() -> None:
    """Late attempts never wait longer than the maximum delay."""
    assert all(backoff_s(30, 2.0, 300.0) <= 300.0 for _ in range(500))


def test_backoff_jitter_is_full() -> None:
    """Delays spread over the whole range, below half the cap too (full, not equal, jitter)."""
    delays = [backoff_s(3, 2.0, 300.0) for _ in range(1000)]
    assert min(delays) < 4.0 < max(delays)


def test_policy_reads_the_task_settings() -> None:
    """Retry cap and backoff come from LIVETUTOR_TASK_MAX_RETRIES, _BACKOFF_S, _BACKOFF_MAX_S."""
    settings = Settings.from_env(
        {
            "LIVETUTOR_TASK_MAX_RETRIES": "2",
            "LIVETUTOR_TASK_BACKOFF_S": "0.5",
            "LIVETUTOR_TASK_BACKOFF_MAX_S": "7",
        }
    )
    policy = RetryPolicy.from_settings(settings.knowledge)
    assert policy == RetryPolicy(max_retries=2, backoff_s=0.5, backoff_max_s=7.0)
