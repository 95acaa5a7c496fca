"""Formulas in the chat UI: a model's answer with inline and display math, streamed by the
scripted OpenAI-compatible server to ``livetutor serve``, in Chromium.

The page records every state the answer passes through (a MutationObserver, so no state
is missed between two polls); the tests then check that a formula's ``.katex`` rendering
appears only once its closing delimiter has arrived, and that nothing ever shows a KaTeX
error on the way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.frontend.conftest import LiveServer, ServerProcess, shot, sign_in
from tests.frontend.test_accessibility import violations
from tests.frontend.test_chat_e2e import DONE, STREAMING, TUTOR, ask
from tests.support.fake_openai import FakeOpenAI, Reply, run_fake_openai

MODEL = "tutor-model"
# Slow enough that each token reaches the page as a delta of its own.
TOKEN_DELAY_S = 0.08
# An answer as a model writes it: an inline formula, prices, a display formula on lines of
# its own, then a \(…\) formula. Each formula takes several tokens to close.
ANSWER = (
    "The area of a circle is ",
    "$A",
    " = ",
    "\\pi ",
    "r^2$",
    ", whatever its size. A small pizza costs $5",
    " and a large one $10",
    ": prices, not formulas.\n\n",
    "The quadratic formula solves ",
    "$ax^2 + bx + c = 0$:\n\n",
    "$$\n",
    "x = ",
    "\\frac{-b ",
    "\\pm ",
    "\\sqrt{",
    "b",
    "^2 ",
    "- ",
    "4",
    "a",
    "c}",
    "}{",
    "2a}",
    "\n$",
    "$\n\n",
    "Its two roots are ",
    "\\(x_",
    "{1,2}",
    "\\)",
    " [1].",
)
# What the page shows as plain text while each formula is still open: the formula's source.
OPEN_SOURCES = ("$A = ", "$$\nx = \\frac{-b", "\\(x_")
REJECTED_ANSWER = (
    "A formula that does not parse: ",
    "$\\frac{1}{$",
    "; one that asks for a link: ",
    "$\\href{https://example.org}{x}$",
    "; and one that does: $e^{i\\pi} + 1 = 0$.",
)

RECORDER = """() => {
    window.mathStates = [];
    const record = () => {
        const all = document.querySelectorAll(
            '[data-testid=tutor-message] [data-testid=answer-text]');
        const last = all[all.length - 1];
        const md = last && last.querySelector('.md');
        if (!md) return;
        const plain = md.cloneNode(true);
        plain.querySelectorAll('.katex').forEach((k) => k.remove());
        window.mathStates.push({
            plain: plain.textContent,
            katex: md.querySelectorAll('.katex').length,
            display: md.querySelectorAll('.katex-display').length,
            errors: md.querySelectorAll('.katex-error').length,
            rejected: md.querySelectorAll('[data-math=rejected]').length,
        });
    };
    new MutationObserver(record).observe(document.body, {
        subtree: true, childList: true, characterData: true,
    });
}"""


class ScriptedModel:
    """The scripted OpenAI-compatible server on its own event loop, in a thread of its own."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fake: FakeOpenAI | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            pytest.fail("the scripted model server did not start")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with run_fake_openai(model=MODEL) as fake:
            self._fake = fake
            self._ready.set()
            await self._stop.wait()

    @property
    def base_url(self) -> str:
        """The server's ``/v1`` address."""
        assert self._fake is not None
        return self._fake.base_url

    def answer_next(self, tokens: tuple[str, ...]) -> None:
        """The next request gets ``tokens``, paced like a model."""
        assert self._fake is not None
        self._fake.script.append(Reply.answer(tokens, token_delay_s=TOKEN_DELAY_S))

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    """The scripted model, for this module's server."""
    scripted = ScriptedModel()
    try:
        yield scripted
    finally:
        scripted.stop()


@pytest.fixture(scope="module")
def math_live(
    tmp_path_factory: pytest.TempPathFactory, model: ScriptedModel
) -> Iterator[LiveServer]:
    """``livetutor serve`` answering with the scripted model."""
    data_dir: Path = tmp_path_factory.mktemp("math-server")
    server = ServerProcess(
        data_dir,
        OPENAI_BASE_URL=model.base_url,
        OPENAI_API_KEY="test-key",
        LLM_MODEL=MODEL,
        LIVETUTOR_LLM_CONNECT_RETRIES="0",
    )
    try:
        yield LiveServer(server.url, server.data_dir)
    finally:
        server.stop()


def csp_reports(page: Any) -> list[str]:
    """Collect the console's Content-Security-Policy complaints from now on."""
    found: list[str] = []
    page.on(
        "console",
        lambda m: found.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return found


def states(page: Any) -> list[dict[str, Any]]:
    """Every state the last answer went through, as recorded by ``RECORDER``."""
    recorded: list[dict[str, Any]] = page.evaluate("window.mathStates")
    return recorded


def test_formulas_render_only_once_closed_while_streaming(
    math_live: LiveServer, model: ScriptedModel, new_page: Callable[..., Any]
) -> None:
    """Each formula stays its source text until it closes, then renders; prices stay text."""
    page = new_page(viewport={"width": 1280, "height": 800})
    blocked = csp_reports(page)
    sign_in(page, math_live, "euler")
    page.evaluate(RECORDER)
    model.answer_next(ANSWER)
    ask(page, "How do I solve a quadratic equation?")
    # Mid-answer: the inline formula is rendered, the display formula still open as text.
    page.wait_for_function(
        """() => {
            const src = document.querySelector('[data-status=streaming] p.md-math-src');
            return !!src && src.textContent.includes('\\\\sqrt{')
                && document.querySelectorAll('[data-status=streaming] .katex').length === 2;
        }"""
    )
    shot(page, "36-math-streaming-open-formula")
    page.locator(DONE).wait_for(timeout=60_000)
    answer = page.locator(f"{DONE} [data-testid=answer-text]")
    answer.locator(".katex").nth(3).wait_for()
    shot(page, "37-math-answer")

    # The finished answer: four formulas, one of them displayed, prices as text.
    assert answer.locator(".katex").count() == 4
    assert answer.locator(".md-math-block .katex-display").count() == 1
    assert answer.locator(".katex-error, [data-math]").count() == 0
    text = " ".join(answer.inner_text().split())
    assert "A small pizza costs $5 and a large one $10: prices, not formulas." in text
    assert "\\frac" not in text
    # Screen readers get each formula as MathML, with its TeX as the annotation.
    annotations = [t.strip() for t in answer.locator("annotation").all_text_contents()]
    assert annotations == [
        "A = \\pi r^2",
        "ax^2 + bx + c = 0",
        "x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}",
        "x_{1,2}",
    ]

    seen = states(page)
    assert len(seen) > len(ANSWER) / 2
    assert all(s["errors"] == 0 and s["rejected"] == 0 for s in seen)
    counts = [s["katex"] for s in seen]
    assert counts == sorted(counts), "a rendered formula went back to text"
    # While formula k was open (its source visible as text), at most k formulas had rendered.
    # The second one ($ax^2…$) arrives in one token, so only the others are checked.
    for rendered_before, source in zip((0, 2, 3), OPEN_SOURCES, strict=True):
        open_states = [s for s in seen if source in s["plain"]]
        assert open_states, f"never saw {source!r} as text"
        assert all(s["katex"] <= rendered_before for s in open_states), source
    assert seen[-1]["katex"] == 4
    assert blocked == []


def test_rejected_formula_shows_its_source(
    math_live: LiveServer, model: ScriptedModel, new_page: Callable[..., Any]
) -> None:
    """A formula KaTeX rejects, or one asking for a link, shows as the text the model wrote."""
    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, math_live, "noether")
    page.evaluate(RECORDER)
    model.answer_next(REJECTED_ANSWER)
    ask(page, "Can every formula be rendered?")
    page.locator(DONE).wait_for(timeout=60_000)
    answer = page.locator(f"{DONE} [data-testid=answer-text]")
    answer.locator(".katex").first.wait_for()
    shot(page, "39-math-rejected-source")
    assert answer.locator("[data-math=rejected]").all_inner_texts() == [
        "$\\frac{1}{$",
        "$\\href{https://example.org}{x}$",
    ]
    assert answer.locator(".katex").count() == 1
    assert answer.locator("a").count() == 0
    assert all(s["errors"] == 0 for s in states(page))


def test_math_on_a_phone_and_accessibility(
    math_live: LiveServer, model: ScriptedModel, new_page: Callable[..., Any]
) -> None:
    """On a phone the formulas fit the answer, and axe-core finds no serious problem."""
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True)
    sign_in(page, math_live, "lovelace")
    model.answer_next(ANSWER)
    ask(page, "What is the quadratic formula?")
    page.locator(DONE).wait_for(timeout=60_000)
    answer = page.locator(f"{DONE} [data-testid=answer-text]")
    answer.locator(".katex").nth(3).wait_for()
    answer.locator(".katex-display").scroll_into_view_if_needed()
    shot(page, "38-math-phone")
    # Nothing sticks out of the answer or makes the page scroll sideways.
    article = answer.locator("xpath=ancestor::article")
    assert article.evaluate("(e) => e.scrollWidth <= e.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator(TUTOR).count() == 1
    assert page.locator(STREAMING).count() == 0
    assert violations(page) == []
