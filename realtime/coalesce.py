"""Token coalescing: many small LLM tokens become fewer ``delta`` frames.

A :class:`Coalescer` buffers tokens and emits their text when it holds
``max_tokens`` tokens or ``flush_s`` after the first buffered token,
whichever comes first. It uses one loop timer per flush, not a task per
token, so the cost per token stays a list append.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Coalescer:
    """Buffers tokens and hands their joined text to ``emit``."""

    def __init__(
        self,
        emit: Callable[[str], None],
        *,
        flush_s: float,
        max_tokens: int,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self._emit = emit
        self._flush_s = flush_s
        self._max_tokens = max_tokens
        self._loop = loop or asyncio.get_running_loop()
        self._buffer: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def add(self, token: str) -> None:
        """Buffer one token; may emit at once when the buffer is full."""
        if self._closed:
            raise RuntimeError("coalescer is closed")
        if not token:
            return
        self._buffer.append(token)
        if len(self._buffer) >= self._max_tokens or self._flush_s <= 0:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(self._flush_s, self.flush)

    def flush(self) -> None:
        """Emit whatever is buffered now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            text = "".join(self._buffer)
            self._buffer.clear()
            self._emit(text)

    def close(self) -> None:
        """Emit the rest and refuse further tokens."""
        self.flush()
        self._closed = True

    def discard(self) -> None:
        """Drop the buffer without emitting (the stream was cancelled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buffer.clear()
        self._closed = True
