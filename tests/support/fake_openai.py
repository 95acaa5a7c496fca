"""A small OpenAI-compatible HTTP server for tests, scripted request by request.

It speaks the real wire format, so the official client runs its real code
path against it: ``POST /v1/chat/completions`` (Server-Sent Events when
``stream`` is true, one JSON completion otherwise) and ``GET /v1/models``.
Starlette app, served by uvicorn on 127.0.0.1 port 0 in the test's event loop::

    async with run_fake_openai() as fake:
        fake.script.extend([Reply.error(503), Reply.answer(["Hel", "lo"])])
        client = AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
        ...
        assert len(fake.requests) == 2
        assert fake.requests[0]["stream"] is True

Each request takes the next :class:`Reply` from ``fake.script``; once the
script is empty, every request gets ``fake.default``. A stream the client
abandons (it closed the connection before the last event) is counted in
``fake.disconnects``; :meth:`FakeOpenAI.wait_for_disconnects` waits for the
server to notice, which happens a moment after the client closes.

A scripted drop ends the HTTP response without its terminating chunk, as a
crashing upstream would: the client sees a protocol error, never a clean end.

:meth:`Reply.gullible_answer` scripts a model that trusts its system role blindly:
it obeys the last instruction it reads in any system message ("reply only
with X", "ignore … and say X": it answers just X), and otherwise answers
with its tokens. Text in other roles never moves it, so it tells whether a
prompt put someone else's words in the system role.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.settings import LLMSettings

DEFAULT_MODEL = "fake-model"
DEFAULT_TOKENS = ("Hello", ", ", "world", ".")
STARTUP_TIMEOUT_S = 5.0
SHUTDOWN_TIMEOUT_S = 10.0

# What the gullible model obeys: "reply/respond/answer (only) with X", "say only X",
# "ignore … and say/reply/… X". X runs to the end of its sentence or quotation.
_INSTRUCTION = re.compile(
    r"(?:\b(?:reply|respond|answer)\s+(?:only\s+)?with|\bsay\s+only"
    r"|\bignore\b[^.!?\n]*?\band\s+(?:just\s+)?(?:say|reply|respond|answer)(?:\s+only)?"
    r"(?:\s+with)?)"
    r"\s+(?:only\s+)?[\"“']?(?P<text>[^\"”'.!?\n]+)",
    re.IGNORECASE,
)

# OpenAI-style error bodies: status -> (type, code, message).
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded."),
}


@dataclass(frozen=True, slots=True)
class Reply:
    """How the server answers one request; build one with the class methods."""

    tokens: tuple[str, ...] = DEFAULT_TOKENS
    status: int = 200
    # Before the response headers (or the error response).
    headers_delay_s: float = 0.0
    # Before the first event of a stream (after the response headers).
    first_token_delay_s: float = 0.0
    # Before every content token.
    token_delay_s: float = 0.0
    # Streams only: hang after this many content tokens, until the client goes away
    # or the server stops.
    stall_after: int | None = None
    # Streams only: cut the connection after this many content tokens.
    drop_after: int | None = None
    # End with a chunk whose ``choices`` is empty, as OpenAI does for usage reports.
    usage_chunk: bool = False
    # Answer with the conversation it was given (every message but the system ones).
    echo: bool = False
    # Answer with the last instruction found in the system role, if there is one.
    gullible: bool = False

    @classmethod
    def answer(
        cls,
        tokens: Iterable[str] = DEFAULT_TOKENS,
        *,
        token_delay_s: float = 0.0,
        first_token_delay_s: float = 0.0,
        usage_chunk: bool = False,
    ) -> Reply:
        """A normal answer made of ``tokens``."""
        return cls(
            tokens=tuple(tokens),
            token_delay_s=token_delay_s,
            first_token_delay_s=first_token_delay_s,
            usage_chunk=usage_chunk,
        )

    @classmethod
    def gullible_answer(cls, tokens: Iterable[str] = DEFAULT_TOKENS) -> Reply:
        """Obey the last instruction in the system role; without one, answer ``tokens``."""
        return cls(tokens=tuple(tokens), gullible=True)

    @classmethod
    def echo_conversation(cls) -> Reply:
        """Answer with the text of every non-system message of the request, one per line."""
        return cls(tokens=(), echo=True)

    @classmethod
    def error(cls, status: int) -> Reply:
        """An HTTP error with an OpenAI-style JSON body, before any streaming."""
        if status < 400:
            raise ValueError("an error reply needs a 4xx or 5xx status")
        return cls(tokens=(), status=status)

    @classmethod
    def slow_start(
        cls,
        delay_s: float,
        tokens: Iterable[str] = DEFAULT_TOKENS,
        *,
        before_headers: bool = False,
    ) -> Reply:
        """Nothing for ``delay_s`` before the first event: by default after the headers."""
        if before_headers:
            return cls(tokens=tuple(tokens), headers_delay_s=delay_s)
        return cls(tokens=tuple(tokens), first_token_delay_s=delay_s)

    @classmethod
    def stall(cls, tokens: Iterable[str] = DEFAULT_TOKENS, *, after: int) -> Reply:
        """Stream ``after`` tokens, then hang with the connection open."""
        return cls(tokens=tuple(tokens), stall_after=after)

    @classmethod
    def drop(cls, tokens: Iterable[str] = DEFAULT_TOKENS, *, after: int) -> Reply:
        """Stream ``after`` tokens, then cut the connection mid-response."""
        return cls(tokens=tuple(tokens), drop_after=after)


class FakeOpenAI:
    """The fake endpoint's state: what it will answer and what it saw."""

    def __init__(
        self,
        *,
        default: Reply | None = None,
        script: Iterable[Reply] = (),
        model: str = DEFAULT_MODEL,
    ) -> None:
        self.base_url = ""
        self.model = model
        self.default = default if default is not None else Reply()
        self.script: deque[Reply] = deque(script)
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.disconnects = 0
        # Set whenever a request arrives or a client disconnects; waiters re-check.
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )

    async def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> None:
        """Wait until at least ``count`` chat completion requests have arrived."""
        await _wait(lambda: len(self.requests) >= count, self._changed, timeout_s)

    async def wait_for_disconnects(self, count: int = 1, timeout_s: float = 5.0) -> None:
        """Wait until at least ``count`` streams were abandoned by their client."""
        await _wait(lambda: self.disconnects >= count, self._changed, timeout_s)

    def _next_reply(self) -> Reply:
        return self.script.popleft() if self.script else self.default

    async def _chat_completions(self, request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        self.requests.append(body)
        self._changed.set()
        reply = self._next_reply()
        if reply.echo:
            reply = Reply.answer(_echoed(body))
        if reply.gullible:
            reply = dataclasses.replace(reply, tokens=_obeyed(body, reply.tokens))
        await self._pause(reply.headers_delay_s)
        if reply.status >= 400:
            return JSONResponse(_error_body(reply.status), status_code=reply.status)
        model = str(body.get("model", self.model))
        if body.get("stream"):
            return StreamingResponse(
                self._events(reply, model),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        await self._pause(reply.first_token_delay_s)
        return JSONResponse(_completion(model, "".join(reply.tokens)))

    async def _embeddings(self, request: Request) -> Response:
        """Lexical vectors (the hashing embedder, 256 dimensions, unnormalised scale)."""
        from knowledge.embedders import HashingEmbedder

        body: dict[str, Any] = await request.json()
        self.embedding_requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = HashingEmbedder(256).embed(texts)
        data = [
            {"object": "embedding", "index": i, "embedding": [3.0 * x for x in v]}
            for i, v in enumerate(vectors)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "tests"}],
            }
        )

    async def _events(self, reply: Reply, model: str) -> AsyncIterator[bytes]:
        chunk = _ChunkFactory(model)
        ended = False
        try:
            await self._pause(reply.first_token_delay_s)
            yield chunk.event({"role": "assistant", "content": ""})
            for sent, token in enumerate(reply.tokens):
                await self._interrupt(reply, sent)
                await self._pause(reply.token_delay_s)
                yield chunk.event({"content": token})
            await self._interrupt(reply, len(reply.tokens))
            yield chunk.event({}, finish_reason="stop")
            if reply.usage_chunk:
                yield chunk.usage(len(reply.tokens))
            yield b"data: [DONE]\n\n"
            ended = True
        except _ConnectionDrop:
            ended = True
            raise
        finally:
            # Starlette cancels the body when the client disconnects.
            if not ended:
                self.disconnects += 1
                self._changed.set()

    async def _pause(self, delay_s: float) -> None:
        # Cut short when the server stops, so a slow reply never holds up shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._stopping.wait()

    async def _interrupt(self, reply: Reply, sent: int) -> None:
        if sent == reply.drop_after:
            raise _ConnectionDrop
        if sent == reply.stall_after:
            await self._stopping.wait()
            # Still connected at shutdown: end the response the same abrupt way.
            raise _ConnectionDrop


@contextlib.asynccontextmanager
async def run_fake_openai(
    *,
    default: Reply | None = None,
    script: Iterable[Reply] = (),
    model: str = DEFAULT_MODEL,
) -> AsyncIterator[FakeOpenAI]:
    """Serve a :class:`FakeOpenAI` on 127.0.0.1 port 0 until the block exits."""
    fake = FakeOpenAI(default=default, script=script, model=model)
    config = uvicorn.Config(
        fake.app,
        host="127.0.0.1",
        port=0,
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(SHUTDOWN_TIMEOUT_S),
    )
    server = uvicorn.Server(config)
    quiet = _QuietDrops()
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(quiet)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("fake OpenAI server stopped during start-up")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        fake.base_url = f"http://127.0.0.1:{port}/v1"
        yield fake
    finally:
        fake._stopping.set()
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=SHUTDOWN_TIMEOUT_S)
        finally:
            uvicorn_log.removeFilter(quiet)


def provider_settings(server: FakeOpenAI, **overrides: Any) -> LLMSettings:
    """Settings of an OpenAI-compatible provider pointed at ``server``, with no retries."""
    base: dict[str, Any] = {
        "provider": "openai",
        "base_url": server.base_url,
        "api_key": "test-key",
        "model": server.model,
        "connect_retries": 0,
    }
    return LLMSettings(**{**base, **overrides})


class _ConnectionDrop(Exception):
    """Raised inside a started response: uvicorn then closes the connection mid-body."""


class _QuietDrops(logging.Filter):
    """Hide uvicorn's traceback for the drops we cause on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BaseExceptionGroup):
            return exc.subgroup(_ConnectionDrop) is None
        return not isinstance(exc, _ConnectionDrop)


class _ChunkFactory:
    """``chat.completion.chunk`` events of one stream, sharing its id and timestamp."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def event(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse(self._chunk([choice]))

    def usage(self, completion_tokens: int) -> bytes:
        chunk = self._chunk([])
        chunk["usage"] = {
            "prompt_tokens": 1,
            "completion_tokens": completion_tokens,
            "total_tokens": 1 + completion_tokens,
        }
        return _sse(chunk)

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }


async def _wait(condition: Callable[[], bool], changed: asyncio.Event, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            changed.clear()
            await changed.wait()


def _obeyed(body: dict[str, Any], tokens: tuple[str, ...]) -> tuple[str, ...]:
    """What the gullible model answers: the last system-role instruction's text, or ``tokens``."""
    last = None
    for message in body.get("messages", []):
        content = message.get("content")
        if message.get("role") == "system" and isinstance(content, str):
            for match in _INSTRUCTION.finditer(content):
                last = match.group("text").strip()
    return (last,) if last else tokens


def _echoed(body: dict[str, Any]) -> list[str]:
    """What the echoing model answers: each non-system message's text, one per line."""
    return [
        f"{message['content']}\n"
        for message in body.get("messages", [])
        if message.get("role") != "system" and isinstance(message.get("content"), str)
    ]


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _error_body(status: int) -> dict[str, Any]:
    type_, code, message = _ERRORS.get(status, ("api_error", None, f"HTTP {status}."))
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
