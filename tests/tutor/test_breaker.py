"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from core.errors import CircuitOpen, LLMUnavailable
from tests.support.clock import FakeClock
from tutor.breaker import CircuitBreaker

FAILURES = 3
RESET_S = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(FAILURES, RESET_S, clock=clock)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(FAILURES):
        breaker.before_call()
        breaker.record_failure()


def test_starts_closed(breaker: CircuitBreaker) -> None:
    """A new breaker is closed and lets calls through."""
    assert breaker.state == "closed"
    breaker.before_call()


def test_stays_closed_below_threshold(breaker: CircuitBreaker) -> None:
    """Fewer consecutive failures than the threshold keep it closed."""
    for _ in range(FAILURES - 1):
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.before_call()


def test_opens_after_consecutive_failures(breaker: CircuitBreaker) -> None:
    """The threshold-th consecutive failure opens it."""
    trip(breaker)
    assert breaker.state == "open"


def test_success_resets_the_count(breaker: CircuitBreaker) -> None:
    """A success in between means the failures are not consecutive."""
    for _ in range(FAILURES - 1):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(FAILURES - 1):
        breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.failures == FAILURES - 1


def test_open_fails_fast(breaker: CircuitBreaker) -> None:
    """While open, before_call raises CircuitOpen."""
    trip(breaker)
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_circuit_open_is_unavailable() -> None:
    """Callers that handle LLMUnavailable also handle a fast failure."""
    assert issubclass(CircuitOpen, LLMUnavailable)


def test_stays_open_until_reset(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Just before reset_s it still fails fast."""
    trip(breaker)
    clock.advance(RESET_S - 0.001)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_half_open_after_reset(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Once reset_s has passed the state reads half_open."""
    trip(breaker)
    clock.advance(RESET_S)
    assert breaker.state == "half_open"


def test_half_open_lets_exactly_one_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """The first caller after reset probes; the others still fail fast."""
    trip(breaker)
    clock.advance(RESET_S)
    breaker.before_call()
    for _ in range(3):
        with pytest.raises(CircuitOpen):
            breaker.before_call()
    assert breaker.state == "half_open"


def test_probe_success_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """A successful probe closes the breaker and lets everyone through."""
    trip(breaker)
    clock.advance(RESET_S)
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.before_call()


def test_probe_failure_reopens(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """A failed probe opens the breaker again at once."""
    trip(breaker)
    clock.advance(RESET_S)
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_probe_failure_restarts_the_reset_timer(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """After a failed probe the next probe waits a full reset_s again."""
    trip(breaker)
    clock.advance(RESET_S)
    breaker.before_call()
    clock.advance(RESET_S / 2)
    breaker.record_failure()
    clock.advance(RESET_S - 0.001)
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.advance(0.001)
    breaker.before_call()


def test_release_frees_the_probe_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """A probe that ends without a verdict lets the next caller probe."""
    trip(breaker)
    clock.advance(RESET_S)
    breaker.before_call()
    breaker.release()
    breaker.before_call()
    assert breaker.state == "half_open"


def test_release_does_not_change_the_count(breaker: CircuitBreaker) -> None:
    """A call with no verdict neither counts as a failure nor resets the count."""
    breaker.record_failure()
    breaker.release()
    assert breaker.failures == 1
    assert breaker.state == "closed"


def test_late_success_while_open_is_ignored(breaker: CircuitBreaker) -> None:
    """Only the probe may close an open breaker; older calls finishing late do not."""
    trip(breaker)
    breaker.record_success()
    assert breaker.state == "open"


@pytest.mark.parametrize(("failures", "reset_s"), [(0, 1.0), (1, -1.0)])
def test_rejects_invalid_settings(failures: int, reset_s: float) -> None:
    """A threshold below one or a negative reset time is a configuration error."""
    with pytest.raises(ValueError):
        CircuitBreaker(failures, reset_s)
