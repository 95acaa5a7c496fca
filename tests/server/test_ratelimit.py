"""Per-key token buckets, driven by a fake clock."""

from __future__ import annotations

import pytest

from realtime.ratelimit import TokenBuckets
from tests.support.clock import FakeClock

RATE_PER_S = 2.0
BURST = 3


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def buckets(clock: FakeClock) -> TokenBuckets:
    return TokenBuckets(RATE_PER_S, BURST, clock=clock)


def drain(buckets: TokenBuckets, key: str, n: int = BURST) -> None:
    """Take ``n`` tokens, each of which must be allowed."""
    for _ in range(n):
        assert buckets.take(key) == 0.0


def test_burst_allowed_then_refused(buckets: TokenBuckets) -> None:
    """A new key may act burst times at once; the next take is refused with a positive wait."""
    drain(buckets, "alice")
    wait_s = buckets.take("alice")
    assert wait_s > 0
    assert wait_s == pytest.approx(1 / RATE_PER_S)


def test_waiting_the_returned_time_allows_again(buckets: TokenBuckets, clock: FakeClock) -> None:
    """After waiting the seconds a refusal named, the next take is allowed."""
    drain(buckets, "alice")
    wait_s = buckets.take("alice")
    clock.advance(wait_s)
    assert buckets.take("alice") == 0.0


def test_refills_at_rate(buckets: TokenBuckets, clock: FakeClock) -> None:
    """Tokens come back at rate_per_s: one second at 2/s gives two more actions."""
    drain(buckets, "alice")
    clock.advance(1.0)
    drain(buckets, "alice", 2)
    assert buckets.take("alice") > 0


def test_wait_shrinks_as_time_passes(buckets: TokenBuckets, clock: FakeClock) -> None:
    """A partly refilled bucket names only the time still missing."""
    drain(buckets, "alice")
    clock.advance(0.2)
    assert buckets.take("alice") == pytest.approx(1 / RATE_PER_S - 0.2)


def test_refill_caps_at_burst(buckets: TokenBuckets, clock: FakeClock) -> None:
    """However long a key is idle, it gets back at most burst tokens."""
    drain(buckets, "alice")
    clock.advance(10_000)
    drain(buckets, "alice")
    assert buckets.take("alice") > 0


def test_keys_are_independent(buckets: TokenBuckets) -> None:
    """Emptying one key's bucket leaves another key's bucket full."""
    drain(buckets, "alice")
    assert buckets.take("alice") > 0
    drain(buckets, "bob")


@pytest.mark.parametrize(("rate", "burst"), [(0, 2), (-1, 2), (1, 0)])
def test_unusable_rate_or_burst_is_refused(rate: float, burst: int) -> None:
    """A rate that never refills or an empty burst is a configuration error."""
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBuckets(rate, burst)
