"""Single-flight: concurrent loads of one key inside a pod share one call.

The load runs in a task of its own, so a caller that gives up (its answer was
cancelled) neither cancels the load for the others nor leaves the key stuck.
Loads of different keys never wait for each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """At most one running load per key."""

    def __init__(self) -> None:
        self._loads: dict[str, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._loads)

    async def do(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """The result of ``load()``, or of the load of ``key`` already running."""
        task = self._loads.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._loads[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        result: T = await asyncio.shield(task)
        return result

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._loads.get(key) is task:
            del self._loads[key]
        if not task.cancelled():
            # Retrieved here so a failure nobody awaited any more is not reported as lost.
            task.exception()

    async def cancel_all(self, timeout_s: float) -> None:
        """Cancel the running loads and wait for them, at most ``timeout_s``."""
        tasks = list(self._loads.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
