"""Coalescing LLM tokens into fewer delta texts."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.coalesce import WINDOW_PER_LAG, Coalescer, flush_limits

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


async def test_first_token_goes_out_at_once_when_asked() -> None:
    """With first_at_once the first token is a frame of its own at once; later ones coalesce."""
    sink = Sink()
    coalescer = Coalescer(sink, flush_s=NEVER_S, max_tokens=3, first_at_once=True)
    coalescer.add("a")
    assert sink.texts == ["a"]
    for token in "bcde":
        coalescer.add(token)
    assert sink.texts == ["a", "bcd"]
    coalescer.close()
    assert sink.texts == ["a", "bcd", "e"]


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


class Lag:
    """A lag source the test sets by hand."""

    def __init__(self, lag_s: float = 0.0) -> None:
        self.lag_s = lag_s


IDLE = {"flush_s": 0.015, "max_tokens": 8, "flush_max_s": 0.1, "flush_max_tokens": 64}


@pytest.mark.parametrize(
    ("lag_s", "limits"),
    [
        (0.0, (0.015, 8)),
        (0.001, (0.015, 8)),
        (0.015 / WINDOW_PER_LAG, (0.015, 8)),
        (0.0575 / WINDOW_PER_LAG, (0.0575, 36)),
        (0.1 / WINDOW_PER_LAG, (0.1, 64)),
        (0.1, (0.1, 64)),
        (3.0, (0.1, 64)),
    ],
)
def test_flush_limits_follow_the_lag(lag_s: float, limits: tuple[float, int]) -> None:
    """The window is WINDOW_PER_LAG times the lag, from flush_s to flush_max_s; the cap
    moves alike."""
    window, cap = flush_limits(lag_s, **IDLE)
    assert (window, cap) == (pytest.approx(limits[0]), limits[1])


def test_flush_limits_without_room_to_widen() -> None:
    """With flush_max_s equal to flush_s, lag changes nothing."""
    limits = {**IDLE, "flush_max_s": 0.015}
    assert flush_limits(3.0, **limits) == (0.015, 8)


async def test_window_widens_while_the_loop_lags() -> None:
    """Under lag a frame waits for the wide window; once the lag is gone, the idle one."""
    sink, lag = Sink(), Lag(NEVER_S)
    coalescer = Coalescer(
        sink, flush_s=0.001, max_tokens=100, lag=lag, flush_max_s=NEVER_S, flush_max_tokens=100
    )
    coalescer.add("held")
    await asyncio.sleep(0.05)  # 50 idle windows
    assert sink.texts == []
    coalescer.flush()
    sink.emitted.clear()
    lag.lag_s = 0.0
    coalescer.add("quick")
    await asyncio.wait_for(sink.emitted.wait(), timeout=5)
    assert sink.texts == ["held", "quick"]


async def test_token_cap_widens_while_the_loop_lags() -> None:
    """Under full lag a frame holds flush_max_tokens; the cap is read once per frame."""
    sink, lag = Sink(), Lag(NEVER_S + 1)
    coalescer = Coalescer(
        sink, flush_s=NEVER_S, max_tokens=2, lag=lag, flush_max_s=NEVER_S + 1, flush_max_tokens=5
    )
    for token in "abcd":
        coalescer.add(token)
    assert sink.texts == []
    coalescer.add("e")
    assert sink.texts == ["abcde"]
    lag.lag_s = 0.0
    coalescer.add("f")
    lag.lag_s = NEVER_S + 1  # read at the frame's first token, not now
    coalescer.add("g")
    assert sink.texts == ["abcde", "fg"]


async def test_widest_limits_below_the_idle_ones_are_refused() -> None:
    """flush_max_s below flush_s, or flush_max_tokens below max_tokens, is a ValueError."""
    with pytest.raises(ValueError):
        Coalescer(Sink(), flush_s=0.01, max_tokens=8, flush_max_s=0.005)
    with pytest.raises(ValueError):
        Coalescer(Sink(), flush_s=0.01, max_tokens=8, flush_max_tokens=4)


async def test_close_reports_the_frames_once() -> None:
    """on_close gets the number of frames emitted, once, however often it is closed."""
    reports: list[int] = []
    coalescer = Coalescer(Sink(), flush_s=NEVER_S, max_tokens=2, on_close=reports.append)
    for token in "abc":
        coalescer.add(token)
    coalescer.close()
    coalescer.close()
    coalescer.discard()
    assert reports == [2]
    assert coalescer.frames == 2


async def test_discard_reports_the_frames_sent() -> None:
    """A discarded stream reports the frames it sent before, not the dropped buffer."""
    reports: list[int] = []
    coalescer = Coalescer(Sink(), flush_s=NEVER_S, max_tokens=2, on_close=reports.append)
    for token in "abc":
        coalescer.add(token)
    coalescer.discard()
    assert reports == [1]


@given(
    steps=st.lists(
        st.tuples(st.text(max_size=5), st.sampled_from([0.0, 0.02, 0.05, 0.2])), max_size=40
    ),
)
def test_lag_does_not_change_the_text(steps: list[tuple[str, float]]) -> None:
    """Whatever the lag does between tokens, the emitted texts join to the tokens in order."""
    loop = asyncio.new_event_loop()
    try:
        texts: list[str] = []
        lag = Lag()
        coalescer = Coalescer(
            texts.append,
            flush_s=NEVER_S,
            max_tokens=2,
            lag=lag,
            flush_max_s=NEVER_S + 0.1,
            flush_max_tokens=6,
            loop=loop,
        )
        for token, lag_s in steps:
            lag.lag_s = NEVER_S + lag_s
            coalescer.add(token)
        coalescer.close()
    finally:
        loop.close()
    tokens = [token for token, _ in steps]
    assert "".join(texts) == "".join(tokens)
    assert all(texts)
    assert coalescer.frames == len(texts)
