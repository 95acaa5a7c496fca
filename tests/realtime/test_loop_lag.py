"""Event-loop lag measured by a timer on the loop itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime.loop_lag import LoopLag

BLOCK_S = 0.2


class Samples(list[float]):
    """The monitor's samples, with a wait for more."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    def __call__(self, sample: float) -> None:
        self.append(sample)
        self.arrived.set()

    async def wait(self, count: int) -> None:
        """Until ``count`` samples have arrived (at most 5 s)."""
        async with asyncio.timeout(5):
            while len(self) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def test_a_blocked_loop_shows_as_lag() -> None:
    """A callback that blocks the loop for 200 ms shows as a sample and lag_s of 150 ms or more."""
    samples = Samples()
    monitor = LoopLag(interval_s=0.01, observe=samples)
    monitor.start()
    try:
        await samples.wait(1)
        asyncio.get_running_loop().call_soon(time.sleep, BLOCK_S)
        await samples.wait(2)
        lag_s = monitor.lag_s
    finally:
        monitor.stop()
    assert max(samples) >= 0.15
    assert lag_s >= 0.15
    assert monitor.lag_s == 0.0  # stopped


async def test_lag_decays_once_the_loop_keeps_time() -> None:
    """After a lag spike, lag_s comes down tick by tick instead of staying at the peak."""
    samples = Samples()
    monitor = LoopLag(interval_s=0.01, half_life_s=0.02, observe=samples)
    monitor.start()
    try:
        await samples.wait(1)
        asyncio.get_running_loop().call_soon(time.sleep, BLOCK_S)
        await samples.wait(2)
        await asyncio.sleep(0)
        peak = monitor.lag_s
        count = len(samples)
        await samples.wait(count + 10)
        later = monitor.lag_s
    finally:
        monitor.stop()
    assert peak >= 0.15
    assert later < peak


async def test_stop_ends_sampling() -> None:
    """After stop() no sample arrives; start() after stop() samples again."""
    samples = Samples()
    monitor = LoopLag(interval_s=0.005, observe=samples)
    monitor.start()
    monitor.start()  # a second start while running changes nothing
    await samples.wait(2)
    monitor.stop()
    assert not monitor.running
    count = len(samples)
    await asyncio.sleep(0.05)
    assert len(samples) == count
    monitor.start()
    try:
        await samples.wait(count + 1)
    finally:
        monitor.stop()


@pytest.mark.parametrize("kwargs", [{"interval_s": 0}, {"half_life_s": -1}])
def test_non_positive_periods_are_refused(kwargs: dict[str, float]) -> None:
    """interval_s and half_life_s must be positive."""
    with pytest.raises(ValueError):
        LoopLag(**kwargs)
