"""Coalescing LLM tokens into fewer delta texts."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.coalesce import Coalescer

# Long enough that the timer never fires during a test.
NEVER_S = 3600.0


class Sink:
    """Collects emitted texts and signals each emit."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.emitted = asyncio.Event()

    def __call__(self, text: str) -> None:
        self.texts.append(text)
        self.emitted.set()


async def test_flushes_when_max_tokens_buffered() -> None:
    """The max_tokens-th token emits the buffer at once, joined in order."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=NEVER_S, max_tokens=3)
    coalescer.add("a")
    coalescer.add("b")
    assert sink.texts == []
    coalescer.add("c")
    assert sink.texts == ["abc"]


async def test_flushes_after_flush_s() -> None:
    """Tokens below max_tokens are emitted together by the loop timer."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=0.01, max_tokens=100)
    coalescer.add("Hel")
    coalescer.add("lo")
    assert sink.texts == []
    await asyncio.wait_for(sink.emitted.wait(), timeout=5)
    assert sink.texts == ["Hello"]


async def test_timer_restarts_after_a_timed_flush() -> None:
    """A token after a timed flush is emitted by a new timer."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=0.01, max_tokens=100)
    coalescer.add("one")
    await asyncio.wait_for(sink.emitted.wait(), timeout=5)
    sink.emitted.clear()
    coalescer.add("two")
    await asyncio.wait_for(sink.emitted.wait(), timeout=5)
    assert sink.texts == ["one", "two"]


async def test_flush_s_zero_emits_every_token() -> None:
    """With flush_s=0 each token is emitted on its own, immediately."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=0, max_tokens=100)
    for token in ["a", "b", "c"]:
        coalescer.add(token)
    assert sink.texts == ["a", "b", "c"]


async def test_close_emits_the_rest() -> None:
    """close() emits whatever is still buffered."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=NEVER_S, max_tokens=100)
    coalescer.add("end ")
    coalescer.add("here")
    coalescer.close()
    assert sink.texts == ["end here"]


async def test_close_with_empty_buffer_emits_nothing() -> None:
    """close() on an empty buffer does not emit an empty text."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=NEVER_S, max_tokens=100)
    coalescer.close()
    assert sink.texts == []


async def test_add_after_close_raises() -> None:
    """A closed coalescer refuses further tokens."""
    coalescer = Coalescer(Sink(), flush_s=NEVER_S, max_tokens=100)
    coalescer.close()
    with pytest.raises(RuntimeError):
        coalescer.add("late")


async def test_empty_tokens_are_ignored() -> None:
    """Empty tokens neither emit nor count towards max_tokens."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=0, max_tokens=2)
    coalescer.add("")
    assert sink.texts == []
    coalescer = Coalescer(sink, flush_s=NEVER_S, max_tokens=2)
    coalescer.add("a")
    coalescer.add("")
    assert sink.texts == []
    coalescer.add("b")
    assert sink.texts == ["ab"]


async def test_discard_drops_the_buffer() -> None:
    """discard() drops buffered tokens without emitting and refuses more."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=NEVER_S, max_tokens=100)
    coalescer.add("never sent")
    coalescer.discard()
    coalescer.close()
    assert sink.texts == []
    with pytest.raises(RuntimeError):
        coalescer.add("late")


async def test_max_tokens_below_one_is_refused() -> None:
    """max_tokens must be at least 1."""
    with pytest.raises(ValueError):
        Coalescer(Sink(), flush_s=0.01, max_tokens=0)


@given(
    tokens=st.lists(st.text(max_size=5), max_size=40),
    max_tokens=st.integers(min_value=1, max_value=10),
)
def test_emitted_text_is_the_tokens_in_order(tokens: list[str], max_tokens: int) -> None:
    """Joined emitted texts equal the concatenated tokens, with no empty emits."""
    loop = asyncio.new_event_loop()
    try:
        texts: list[str] = []
        coalescer = Coalescer(texts.append, flush_s=NEVER_S, max_tokens=max_tokens, loop=loop)
        for token in tokens:
            coalescer.add(token)
        coalescer.close()
    finally:
        loop.close()
    assert "".join(texts) == "".join(tokens)
    assert all(texts)
