"""The reference client of protocol v1, used by ``livetutor ask``, tests and benchmarks.

It checks what a client must check: deltas of a stream arrive with ``seq``
1, 2, 3, … with no gap and no repeat, and the ``stream.end`` names the last.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect

from realtime.protocol import SUBPROTOCOL

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class StreamGapError(Exception):
    """A stream's deltas skipped or repeated a ``seq``."""


@dataclass(slots=True)
class Answer:
    """One streamed answer as the client saw it."""

    ask: str
    stream: str = ""
    session: str = ""
    text: str = ""
    seqs: list[int] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why the stream ended."""
        return str(self.end.get("reason", ""))

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The passages the answer cites."""
        sources: list[dict[str, Any]] = self.end.get("sources", [])
        return sources


def ws_url(address: str) -> str:
    """The ``/ws`` URL of a server from its address: ``http(s)://host:port`` as ``serve``
    prints it, or ``ws(s)://host:port/ws``. A clear ``ValueError`` for anything else."""
    parts = urlsplit(address.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError(
            f"{address!r} is not a server address: give http(s)://host:port or ws(s)://host:port/ws"
        )
    if parts.username or parts.password:
        raise ValueError("a server address must not carry a user name or password")
    if parts.query or parts.fragment:
        raise ValueError("a server address takes no query or fragment (the token goes in --token)")
    path = parts.path.rstrip("/")
    if path not in ("", "/ws"):
        raise ValueError(f"{address!r} names the path {parts.path!r}: the server listens on /ws")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError:
        raise ValueError(f"{address!r} has a port that is not a number from 0 to 65535") from None
    return urlunsplit((scheme, parts.netloc, "/ws", "", ""))


class TutorClient:
    """A connection to ``/ws`` with helpers to ask and follow answers."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.pending: list[dict[str, Any]] = []
        # ask id -> (stream id, session id) of every stream.start seen, whoever consumed it.
        self.started: dict[str, tuple[str, str]] = {}

    @classmethod
    async def connect(
        cls, url: str, token: str, *, timeout_s: float = 10.0, **options: Any
    ) -> TutorClient:
        """Connect with the token in the ``Authorization`` header and wait for ``welcome``.

        The header keeps the token out of URLs, which proxies and servers log.
        """
        headers = {**options.pop("additional_headers", {}), "Authorization": f"Bearer {token}"}
        ws = await connect(
            url,
            additional_headers=headers,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            open_timeout=timeout_s,
            compression=None,
            **options,
        )
        client = cls(ws, {})
        client.welcome = await client.recv(timeout_s)
        if client.welcome.get("type") != "welcome":
            await ws.close()
            raise ConnectionError(f"expected welcome, got {client.welcome.get('type')}")
        return client

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame."""
        await self.ws.send(_encode(frame).decode())

    async def recv(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The next frame (frames put aside by :meth:`wait_for` come first)."""
        if self.pending:
            return self.pending.pop(0)
        async with asyncio.timeout(timeout_s):
            return await self._next()

    async def _next(self) -> dict[str, Any]:
        frame: dict[str, Any] = _decode(await self.ws.recv())
        if frame.get("type") == "stream.start":
            self.started[frame["ask"]] = (frame["stream"], frame["session"])
        return frame

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """The first frame that matches; others are kept for later :meth:`recv` calls."""
        kept: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    frame = self.pending.pop(0) if self.pending else await self._next()
                    if match(frame):
                        return frame
                    kept.append(frame)
        finally:
            self.pending[:0] = kept

    async def ask(
        self,
        text: str,
        *,
        course: str = "demo",
        mode: str = "explain",
        session: str | None = None,
        ask_id: str | None = None,
        problem: str | None = None,
    ) -> str:
        """Send ``ask`` (about a course ``problem``, if given); returns its id."""
        ask_id = ask_id or uuid.uuid4().hex[:12]
        frame: dict[str, Any] = {
            "type": "ask",
            "id": ask_id,
            "course": course,
            "text": text,
            "mode": mode,
        }
        if session:
            frame["session"] = session
        if problem:
            frame["problem"] = problem
        await self.send(frame)
        return ask_id

    async def attempt(
        self, problem: str, text: str, *, course: str = "demo", timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Send an ``attempt`` at a course problem; returns its ``feedback`` (or ``error``)."""
        attempt_id = uuid.uuid4().hex[:12]
        await self.send(
            {
                "type": "attempt",
                "id": attempt_id,
                "course": course,
                "problem": problem,
                "text": text,
            }
        )
        return await self.wait_for(
            lambda f: f["type"] in ("feedback", "error") and f.get("ref") == attempt_id, timeout_s
        )

    async def answer(
        self,
        ask_id: str,
        *,
        timeout_s: float = 60.0,
        on_delta: Callable[[str], None] | None = None,
        after: int = 0,
        stream: str = "",
    ) -> Answer:
        """Follow the stream opened for ``ask_id`` to its end, checking seq order.

        ``after`` is the last seq already seen (when resuming); ``stream`` names
        the stream when its ``stream.start`` came on another connection.

        An ``error`` answering the ask before any stream starts ends the wait:
        the answer has no stream and the error in ``errors``.
        """
        answer = Answer(ask=ask_id, stream=stream)
        if not stream and ask_id in self.started:
            answer.stream, answer.session = self.started[ask_id]
        expected = after + 1
        async with asyncio.timeout(timeout_s):
            while True:
                frame = await self.wait_for(lambda f: _belongs(f, answer), timeout_s=timeout_s)
                kind = frame["type"]
                if kind == "error":
                    answer.errors.append(frame)
                    if not answer.stream:
                        return answer
                elif kind == "stream.start":
                    answer.stream, answer.session = frame["stream"], frame["session"]
                elif kind == "delta":
                    if frame["seq"] != expected:
                        raise StreamGapError(f"expected seq {expected}, got {frame['seq']}")
                    expected += 1
                    answer.seqs.append(frame["seq"])
                    answer.text += frame["text"]
                    if on_delta:
                        on_delta(frame["text"])
                elif kind == "stream.end":
                    if frame["seq"] != expected - 1:
                        raise StreamGapError(
                            f"stream.end says seq {frame['seq']}, last delta was {expected - 1}"
                        )
                    answer.end = frame
                    return answer

    async def close(self) -> None:
        """Close the connection."""
        await self.ws.close()

    async def __aenter__(self) -> TutorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _belongs(frame: dict[str, Any], answer: Answer) -> bool:
    kind = frame.get("type")
    if kind == "stream.start":
        return bool(frame.get("ask") == answer.ask)
    if kind == "error":
        return bool(frame.get("ref") == answer.ask)
    if kind in ("delta", "stream.end"):
        return bool(answer.stream) and frame.get("stream") == answer.stream
    return False
