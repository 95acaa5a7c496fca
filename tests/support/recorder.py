"""A session subscriber that keeps every frame it is delivered, for tests of the bus and tutor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

Frame = dict[str, Any]


class Recorder:
    """A :class:`realtime.hub.Subscriber` that records the frames as the client would read them."""

    def __init__(self, connection: str = "conn-1") -> None:
        # The bus lists a subscriber in presence by its ``id``, as it does connections.
        self.id = connection
        self.frames: list[Frame] = []
        self._arrived = asyncio.Event()

    def deliver(self, frame: dict[str, Any], text: str) -> None:
        # The encoded text is what goes out on the socket: record that, not the dict.
        self.frames.append(json.loads(text))
        self._arrived.set()

    def following(self) -> set[str]:
        return set()

    def of_type(self, kind: str) -> list[Frame]:
        """The frames of one ``type``, in arrival order."""
        return [f for f in self.frames if f["type"] == kind]

    async def wait_for(self, check: Callable[[Frame], bool], timeout_s: float = 5.0) -> Frame:
        """The first frame, already here or still to come, for which ``check`` holds."""
        async with asyncio.timeout(timeout_s):
            seen = 0
            while True:
                for frame in self.frames[seen:]:
                    if check(frame):
                        return frame
                seen = len(self.frames)
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for_end(self, stream: str | None = None, timeout_s: float = 5.0) -> Frame:
        """The ``stream.end`` of ``stream`` (of any stream when None)."""
        return await self.wait_for(
            lambda f: f["type"] == "stream.end" and stream in (None, f["stream"]), timeout_s
        )
