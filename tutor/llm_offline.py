"""The offline tutor: a deterministic answer composed from retrieved passages.

It needs no model and no network, so ``livetutor serve`` works anywhere.
Answers say plainly that they are composed from the course text, cite pages,
and stream word by word at ``offline_pace_ms`` (0 in tests). The same prompt
always gives the same text, so a stream taken over mid-answer continues
exactly where it stopped.

Course text is untrusted (see :mod:`tutor.prompts`): it is only ever shown
as quoted material, never in the tutor's own voice. Explain mode quotes each
passage as a Markdown block quote on one line, under a label naming its
heading, document and page; headings and partial sentences inside the
tutor's sentences stand between “ and ”, with any such quotes in the course
text straightened so they cannot end the quotation early.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncGenerator

from core.retrieval import Passage
from core.settings import LLMSettings
from core.text import terms
from realtime.protocol import Mode
from tutor.llm import Prompt

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_TOKEN = re.compile(r"\S+\s*|\s+")
_WORD = re.compile(r"[A-Za-z]+")
_SPACES = re.compile(r"\s+")
_STRAIGHT = str.maketrans({"“": '"', "”": '"'})
# Yield to the event loop this often when unpaced, so cancel and other streams get a turn.
_YIELD_EVERY = 16
# Answers composed and kept (the same question over the same passages is composed once).
_COMPOSED_CACHE = 512


class OfflineProvider:
    """Answers from the passages alone, labelled ``model: "offline"``."""

    def __init__(self, settings: LLMSettings) -> None:
        self._pace_s = max(settings.offline_pace_ms, 0.0) / 1000

    @property
    def name(self) -> str:
        """Provider name."""
        return "offline"

    @property
    def model(self) -> str:
        """Reported model name."""
        return "offline"

    async def stream(self, prompt: Prompt) -> AsyncGenerator[str, None]:
        """Yield the composed answer word by word."""
        if prompt.continuation:
            text = compose(prompt)
            if text.startswith(prompt.continuation):
                text = text[len(prompt.continuation) :]
            tokens: tuple[str, ...] = tuple(_TOKEN.findall(text))
        else:
            tokens = _composed_tokens(
                prompt.question, prompt.mode, prompt.course, prompt.hint_level, *prompt.passages
            )
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, token in enumerate(tokens):
            if self._pace_s:
                # Against a fixed schedule, so a busy loop does not slow the pace down. Tokens
                # already due go out together without a round of the loop each, as a hosted
                # model's tokens do when its reader is behind (several in one network read).
                delay = started + (i + 1) * self._pace_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif i % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            elif i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            yield token

    async def start(self) -> None:
        """Nothing to start."""

    def problem(self) -> str | None:
        """Always ready: an unreachable endpoint is the breaker's and the fallback's to cover."""
        return None

    async def aclose(self) -> None:
        """Nothing to release."""


@functools.lru_cache(maxsize=_COMPOSED_CACHE)
def _composed_tokens(
    question: str, mode: Mode, course: str, hint_level: int, *passages: Passage
) -> tuple[str, ...]:
    """The answer's tokens, composed once for the same question and passages."""
    prompt = Prompt(question, mode, course, [], list(passages), hint_level)
    return tuple(_TOKEN.findall(compose(prompt)))


def compose(prompt: Prompt) -> str:
    """The full answer text for a prompt."""
    if not prompt.passages:
        return (
            f"I could not find anything about this in the material of course "
            f"“{prompt.course}”. Try asking with the words the course uses, or ask about "
            "one of its topics."
        )
    if prompt.mode == "hint":
        return _hint(prompt)
    return _explain(prompt)


def _inline(text: str) -> str:
    """Course text to stand between “ and ” in a line of ours: one line, no curly quotes."""
    return _SPACES.sub(" ", text).strip().translate(_STRAIGHT)


def _quote(text: str) -> str:
    """Course text as a one-line Markdown block quote: a line break cannot leave it."""
    return f"> {_inline(text)}"


def _cite(p: Passage) -> str:
    return f"({_inline(p.document)}, p. {p.page})"


def _key_sentences(p: Passage, question: str, n: int) -> list[str]:
    wanted = set(terms(question))
    sentences = [s for s in _SENTENCE.split(p.text) if s]
    ranked = sorted(
        range(len(sentences)),
        key=lambda i: (-len(wanted & set(terms(sentences[i]))), i),
    )
    return [sentences[i] for i in sorted(ranked[:n])]


def _explain(prompt: Prompt) -> str:
    parts = ["Here is what the course material says (offline tutor, quoting the course text).\n"]
    for p in prompt.passages[:3]:
        body = " ".join(_key_sentences(p, prompt.question, 2))
        parts.append(f"From “{_inline(p.heading)}” {_cite(p)}:\n{_quote(body)}\n")
    first = prompt.passages[0]
    parts.append(f"To go further, read page {first.page}, “{_inline(first.heading)}”.")
    return "\n".join(parts)


def _key_words(text: str, n: int) -> list[str]:
    """The first ``n`` distinct content words of ``text``, as written (not stems)."""
    words: dict[str, str] = {}
    for word in _WORD.findall(text):
        stems = terms(word)
        if stems and len(word) > 4 and stems[0] not in words:
            words[stems[0]] = word.lower()
    return list(words.values())[:n]


def _hint(prompt: Prompt) -> str:
    first = prompt.passages[0]
    keywords = _key_words(first.text, 4)
    level = max(prompt.hint_level, 0)
    lines = [
        "Let's work this out together (offline tutor, hint mode).\n",
        f"1. Reread page {first.page}, “{_inline(first.heading)}” {_cite(first)}.",
        f"2. Pick out the key terms there: {', '.join(keywords)}. What does each one mean?",
        "3. Which of them does your question depend on, and how are they related?",
    ]
    if level >= 1:
        opening = _inline(_key_sentences(first, prompt.question, 1)[0]).split()
        lines.append(
            f"4. A start, for you to finish: “{' '.join(opening[: max(len(opening) // 2, 3)])} …”"
        )
    if level >= 2 and len(prompt.passages) > 1:
        second = prompt.passages[1]
        lines.append(
            f"5. Compare with page {second.page}, “{_inline(second.heading)}” {_cite(second)}."
        )
    lines.append("\nWhat answer do you reach? Tell me and I will check your reasoning.")
    return "\n".join(lines)
