"""The OpenAI-compatible provider: OpenAI itself, or a local Ollama or llama.cpp server.

Fault handling over the life of one answer:

- the circuit breaker fails fast while the endpoint is known to be down;
- until the first content token, a connection-level failure (refused, reset,
  timed out, HTTP 429/5xx, no first token within ``first_token_timeout_s``) is
  retried up to ``connect_retries`` times, ``retry_backoff_s * 2**attempt``
  apart: the learner has seen nothing yet, so a retry is invisible;
- once a token was yielded, a failure is final: a retry would start the answer
  over. Continuing elsewhere is the caller's job, with ``Prompt.continuation``;
- between tokens, a stall longer than ``token_timeout_s`` is a failure.

The breaker counts every failed HTTP request, retries included, and records
success at the first content token: that proves the endpoint answers, and it
lets a half-open probe close the breaker without waiting for a long answer to
end. A failure later in the same stream still counts. HTTP 4xx other than 429
is the request's fault, so it is neither retried nor counted.

Every error leaves as a :class:`core.errors.LLMError`; closing or cancelling
the iteration closes the HTTP response, which closes its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable

import structlog
from openai import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    AsyncStream,
    Timeout,
)
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from core.errors import LLMError, LLMRejected, LLMTimeout, LLMUnavailable
from core.settings import LLMSettings
from tutor.breaker import CircuitBreaker
from tutor.llm import ChatMessage, Prompt

log = structlog.get_logger("livetutor.llm")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers ignore the key, but the client refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"
CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly where it stopped, "
    "without repeating anything and without any preamble."
)

_Upstream = AsyncStream[ChatCompletionChunk]


class OpenAIProvider:
    """Streams chat completions from an OpenAI-compatible endpoint."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s, clock)
        self._client = AsyncOpenAI(
            api_key=settings.api_key or PLACEHOLDER_API_KEY,
            base_url=settings.base_url or DEFAULT_BASE_URL,
            # Retries are ours: only before the first token, and counted by the breaker.
            max_retries=0,
            # The socket read timeout is only a backstop; the token deadlines below are
            # the real limits. It must not be shorter than the first-token wait, or a
            # slow first token would fail as a read timeout before its own deadline.
            timeout=Timeout(
                max(settings.token_timeout_s, settings.first_token_timeout_s),
                connect=settings.connect_timeout_s,
            ),
        )

    @property
    def name(self) -> str:
        """Provider name."""
        return "openai"

    @property
    def model(self) -> str:
        """The model requested from the endpoint."""
        return self._settings.model

    async def stream(self, prompt: Prompt) -> AsyncGenerator[str, None]:
        """Yield the answer's text as the endpoint streams it."""
        upstream, first = await self._open(_messages(prompt), prompt.max_tokens)
        try:
            if first is None:
                return
            yield first
            while True:
                try:
                    async with asyncio.timeout(self._settings.token_timeout_s):
                        chunk = await upstream.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    self._record_failure()
                    raise LLMTimeout(
                        f"no token for {self._settings.token_timeout_s} s mid-answer"
                    ) from exc
                except Exception as exc:
                    self._record_failure()
                    raise _map_error(exc) from exc
                text = _text(chunk)
                if text:
                    yield text
        finally:
            await _close_quietly(upstream)

    async def start(self) -> None:
        """Nothing to start."""

    def problem(self) -> str | None:
        """Always ready: an unreachable endpoint is the breaker's and the fallback's to cover."""
        return None

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.close()

    async def _open(
        self, messages: list[ChatCompletionMessageParam], max_tokens: int | None = None
    ) -> tuple[_Upstream, str | None]:
        """Start a stream and wait for its first content token, retrying as the policy allows."""
        attempt = 0
        while True:
            self.breaker.before_call()
            try:
                opened = await self._attempt(messages, max_tokens)
            except Exception as exc:
                error = _map_error(exc)
                if isinstance(error, LLMRejected):
                    self.breaker.release()
                    raise error from exc
                self._record_failure()
                # Once the breaker opened, a retry would only fail fast: report the real cause.
                if (
                    attempt >= self._settings.connect_retries
                    or not _is_transient(exc)
                    or self.breaker.state != "closed"
                ):
                    raise error from exc
                log.warning("llm.retry", attempt=attempt + 1, error=type(exc).__name__)
            except BaseException:
                # Cancelled: no verdict on the endpoint, but a half-open probe slot must be freed.
                self.breaker.release()
                raise
            else:
                self.breaker.record_success()
                return opened
            await asyncio.sleep(self._settings.retry_backoff_s * 2**attempt)
            attempt += 1

    async def _attempt(
        self, messages: list[ChatCompletionMessageParam], max_tokens: int | None = None
    ) -> tuple[_Upstream, str | None]:
        """One request: the stream and its first content token, or None if it ended without one."""
        upstream: _Upstream | None = None
        try:
            # One deadline for connecting, the response headers and the first content token.
            async with asyncio.timeout(self._settings.first_token_timeout_s):
                upstream = await self._client.chat.completions.create(
                    model=self._settings.model,
                    messages=messages,
                    stream=True,
                    temperature=self._settings.temperature,
                    max_tokens=min(
                        max_tokens or self._settings.max_output_tokens,
                        self._settings.max_output_tokens,
                    ),
                )
                while True:
                    try:
                        chunk = await upstream.__anext__()
                    except StopAsyncIteration:
                        return upstream, None
                    text = _text(chunk)
                    if text:
                        return upstream, text
        except TimeoutError as exc:
            if upstream is not None:
                await _close_quietly(upstream)
            raise _FirstTokenTimeout(self._settings.first_token_timeout_s) from exc
        except BaseException:
            if upstream is not None:
                await _close_quietly(upstream)
            raise

    def _record_failure(self) -> None:
        was_open = self.breaker.state == "open"
        self.breaker.record_failure()
        if not was_open and self.breaker.state == "open":
            log.warning("llm.breaker_open", reset_s=self._settings.breaker_reset_s)


class _FirstTokenTimeout(Exception):
    """No first content token within ``first_token_timeout_s``."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no first token within {timeout_s} s")


def _messages(prompt: Prompt) -> list[ChatCompletionMessageParam]:
    messages = [_message_param(m) for m in prompt.messages]
    if prompt.continuation:
        messages.append({"role": "assistant", "content": prompt.continuation})
        messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    return messages


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    content = message["content"]
    match message["role"]:
        case "system":
            return {"role": "system", "content": content}
        case "assistant":
            return {"role": "assistant", "content": content}
        case "user":
            return {"role": "user", "content": content}


def _text(chunk: ChatCompletionChunk) -> str:
    # Usage and content-filter chunks carry no choices; role and final chunks no content.
    if not chunk.choices:
        return ""
    return chunk.choices[0].delta.content or ""


def _is_transient(exc: Exception) -> bool:
    """Whether a failure before the first token is worth another attempt."""
    if isinstance(exc, _FirstTokenTimeout | APIConnectionError):
        return True
    return isinstance(exc, APIStatusError) and _is_unavailable_status(exc.status_code)


def _is_unavailable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _map_error(exc: Exception) -> LLMError:
    """The server's error for whatever the client raised while talking to the endpoint."""
    if isinstance(exc, _FirstTokenTimeout):
        return LLMTimeout(str(exc))
    if isinstance(exc, APITimeoutError):
        return LLMTimeout("the language model endpoint timed out")
    if isinstance(exc, APIConnectionError):
        return LLMUnavailable(
            "could not reach the language model endpoint, or it dropped the stream"
        )
    if isinstance(exc, APIStatusError):
        if _is_unavailable_status(exc.status_code):
            return LLMUnavailable(f"the language model endpoint answered HTTP {exc.status_code}")
        return LLMRejected(
            f"the language model endpoint refused the request: HTTP {exc.status_code} {exc.message}"
        )
    # An error event inside the stream, a malformed chunk, or anything else from the
    # client: the contract is that only LLMError leaves a provider.
    return LLMUnavailable(f"the language model stream failed: {type(exc).__name__}")


async def _close_quietly(upstream: _Upstream) -> None:
    # Closing a broken connection can fail too; that must not hide the error being raised.
    with contextlib.suppress(Exception):
        await upstream.close()
