"""The language model interface and the one place a provider is chosen.

A provider turns a :class:`Prompt` into an async iterator of text tokens.
Providers raise only :class:`core.errors.LLMError` subclasses; cancelling
the iteration (``aclose`` or task cancellation) closes the upstream stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict

from core.retrieval import Passage
from realtime.protocol import Mode


class ChatMessage(TypedDict):
    """One chat message in the OpenAI wire shape."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """Everything a provider needs to answer one question."""

    question: str
    mode: Mode
    course: str
    messages: list[ChatMessage]
    passages: list[Passage] = field(default_factory=list)
    hint_level: int = 0
    # Text already sent to the learner; the provider continues after it.
    continuation: str = ""
    # A tighter output limit than the provider's own (a private reference answer).
    max_tokens: int | None = None


class LLMProvider(Protocol):
    """Streams the tokens of an answer."""

    @property
    def name(self) -> str:
        """Provider name for labels and metrics: ``openai``, ``local`` or ``offline``."""
        ...

    @property
    def model(self) -> str:
        """Model name reported to the learner in ``stream.end``."""
        ...

    async def start(self) -> None:
        """Start what the provider runs itself (the local model server); returns at once."""
        ...

    def problem(self) -> str | None:
        """Why the pod is not ready to answer with this provider yet; None when it is."""
        ...

    def stream(self, prompt: Prompt) -> AsyncGenerator[str, None]:
        """Yield the answer's text piece by piece."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
