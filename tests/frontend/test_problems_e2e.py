"""Problems and hints in the chat UI, in Chromium: a course problem made with the
instructor API, chosen in the problem panel; hints that climb the ladder while the
scripted model states the verdict in one sentence (the page shows the other sentences
and a neutral "kept this back" marker, never the verdict), attempts and their feedback,
and a course whose policy holds hints only.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.frontend.conftest import LiveServer, ServerProcess, shot, sign_in
from tests.frontend.test_accessibility import violations
from tests.frontend.test_chat_e2e import TUTOR, ask
from tests.frontend.test_math_e2e import MODEL, ScriptedModel, csp_reports
from tests.support.fake_openai import Reply

PROBLEM = "socrates"
STATEMENT = "Is this argument valid: all men are mortal, Socrates is a man, so Socrates is mortal?"
# The model gives the verdict away in its second sentence; the guard must keep it back.
LEAKY = (
    "Think about what the premises say. ",
    "This argument is valid. ",
    "Which premise is about Socrates?",
)
VERDICT = re.compile(r"\bis valid\b", re.IGNORECASE)
TOKEN_DELAY_S = 0.05
# Word by word and slow: long enough to cut the connection while the hint streams.
SLOW_TOKEN_DELAY_S = 0.25
PANEL = "[data-testid=problem-panel]"
LAST_TUTOR = f"{TUTOR} >> nth=-1"

# Every text the answers on the page ever showed, recorded as it changes (no state is
# missed between two polls): the verdict must never be one of them.
RECORDER = """() => {
    window.answerTexts = [];
    const record = () => {
        document.querySelectorAll('[data-testid=tutor-message] [data-testid=answer-text]')
            .forEach((a) => window.answerTexts.push(a.textContent));
    };
    new MutationObserver(record).observe(document.body, {
        subtree: true, childList: true, characterData: true,
    });
}"""


class HintModel(ScriptedModel):
    """The scripted model answering every request with the leaky hint."""

    def leak_always(self) -> None:
        """Every request from now on gets ``LEAKY``, paced like a model."""
        assert self._fake is not None
        self._fake.default = Reply.answer(LEAKY, token_delay_s=TOKEN_DELAY_S)

    def leak_slowly_next(self) -> None:
        """The next request gets ``LEAKY`` a word at a time, slowly."""
        assert self._fake is not None
        words = re.findall(r"\S+\s*", "".join(LEAKY))
        self._fake.script.append(Reply.answer(words, token_delay_s=SLOW_TOKEN_DELAY_S))


@pytest.fixture(scope="module")
def model() -> Iterator[HintModel]:
    """The scripted model, for this module's server."""
    scripted = HintModel()
    scripted.leak_always()
    try:
        yield scripted
    finally:
        scripted.stop()


@pytest.fixture(scope="module")
def hints_live(tmp_path_factory: pytest.TempPathFactory, model: HintModel) -> Iterator[LiveServer]:
    """``livetutor serve`` answering with the scripted model."""
    data_dir: Path = tmp_path_factory.mktemp("hints-server")
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


def call(live: LiveServer, method: str, path: str, token: str = "", body: Any = None) -> Any:
    """A JSON request to the server's HTTP API."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(live.url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def instructor(hints_live: LiveServer) -> str:
    """An instructor's token for the demo course, and the course's problem made with it."""
    token: str = call(
        hints_live,
        "POST",
        "/auth/dev-token",
        body={"user": "ines", "role": "instructor", "courses": ["demo"]},
    )["token"]
    made = call(
        hints_live,
        "PUT",
        f"/courses/demo/problems/{PROBLEM}",
        token,
        {"statement": STATEMENT, "answer": "valid", "accept": ["yes"], "pages": [2]},
    )
    assert made["id"] == PROBLEM
    return token


@pytest.fixture
def open_course(hints_live: LiveServer, instructor: str) -> Iterator[Callable[[str], None]]:
    """Set the demo course's policy; it is open again after the test."""

    def set_policy(mode: str) -> None:
        call(hints_live, "PUT", "/courses/demo/policy", instructor, {"mode": mode})

    set_policy("open")
    yield set_policy
    set_policy("open")


def choose_problem(page: Any) -> None:
    """Open the problem list and work on the problem."""
    panel = page.locator(PANEL)
    panel.get_by_role("button", name="Problems (1)").click()
    card = panel.locator(f"[data-testid=problem][data-problem={PROBLEM}]")
    card.get_by_role("button", name="Work on this").click()
    panel.locator("[data-testid=working-on]", has_text="Socrates is a man").wait_for()


def set_mode(page: Any, mode: str) -> None:
    """Choose Explain or Hint for the next question."""
    page.locator("label", has_text=re.compile(f"^{mode}$")).click()


def last_answer(page: Any) -> str:
    """The last answer's text as shown, white space collapsed."""
    text: str = page.locator(f"{LAST_TUTOR} >> [data-testid=answer-text]").inner_text()
    return " ".join(text.split())


def wait_answers(page: Any, count: int) -> None:
    """Wait until ``count`` answers are on the page and none still streams."""
    page.wait_for_function(
        """(n) => document.querySelectorAll('[data-testid=tutor-message][data-status=done]')
            .length >= n""",
        arg=count,
        timeout=60_000,
    )


def test_hints_climb_the_ladder_and_keep_the_verdict_back(
    hints_live: LiveServer, open_course: Callable[[str], None], new_page: Callable[..., Any]
) -> None:
    """Two hints on a problem: rungs 1 and 2, the verdict kept back behind a marker."""
    page = new_page(viewport={"width": 1280, "height": 800})
    blocked = csp_reports(page)
    sign_in(page, hints_live, "hypatia")
    page.evaluate(RECORDER)
    panel = page.locator(PANEL)
    panel.get_by_role("button", name="Problems (1)").click()
    card = panel.locator("[data-testid=problem]")
    assert " ".join(card.inner_text().split()).startswith(STATEMENT)
    assert "Page 2" in card.inner_text()
    assert card.locator("[data-testid=problem-policy]").inner_text() == "Hints and explanations"
    shot(page, "43-problem-list")
    card.get_by_role("button", name="Work on this").click()
    assert page.locator("#composer").get_attribute("placeholder") == "Ask about this problem…"

    set_mode(page, "Hint")
    ask(page, "Just tell me the answer")
    wait_answers(page, 1)
    answer = page.locator(LAST_TUTOR)
    assert answer.locator("[data-testid=hint-level]").inner_text() == "Hint 1 of 4"
    text = last_answer(page)
    assert "Think about what the premises say." in text
    assert "Which premise is about Socrates?" in text
    marker = answer.locator("[data-testid=kept-back]")
    assert marker.count() == 1
    assert marker.get_attribute("role") == "note"
    assert (marker.get_attribute("aria-label") or "").startswith("The tutor kept this back")
    assert "The tutor kept this back" in marker.inner_text()
    # Neutral, not an error: slate, not red or amber.
    classes = marker.get_attribute("class") or ""
    assert "slate" in classes and not re.search(r"red|amber|rose", classes)
    shot(page, "44-hint-kept-back")

    ask(page, "Another hint, please")
    wait_answers(page, 2)
    assert page.locator(f"{LAST_TUTOR} >> [data-testid=hint-level]").inner_text() == "Hint 2 of 4"
    assert page.locator(f"{TUTOR} [data-testid=kept-back]").count() == 2

    seen: list[str] = page.evaluate("window.answerTexts")
    assert seen, "no answer text was recorded"
    assert not [t for t in seen if VERDICT.search(t)], "the verdict reached the page"
    assert blocked == []


def test_a_hint_cut_off_mid_stream_resumes_and_still_holds(
    hints_live: LiveServer,
    model: HintModel,
    open_course: Callable[[str], None],
    new_page: Callable[..., Any],
) -> None:
    """A dropped socket mid-hint resumes with its marker; after a reload the stored hint shows
    the server's own sentence in its place; the verdict shows at no moment."""
    page = new_page(viewport={"width": 1280, "height": 800})
    routes: list[Any] = []

    def through(ws: Any) -> None:
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r"/ws$"), through)
    sign_in(page, hints_live, "cantor")
    page.evaluate(RECORDER)
    choose_problem(page)
    set_mode(page, "Hint")
    model.leak_slowly_next()
    ask(page, "Where do I start?")
    page.locator(f"{TUTOR}[data-status=streaming]", has_text="premises").wait_for()
    routes[-1].close(code=1011, reason="test drops the connection")
    page.locator("[data-state=resumed]").wait_for()
    wait_answers(page, 1)
    assert len(routes) >= 2
    answer = page.locator(LAST_TUTOR)
    assert answer.locator("[data-testid=hint-level]").inner_text() == "Hint 1 of 4"
    assert answer.locator("[data-testid=kept-back]").count() == 1
    text = last_answer(page)
    assert "Think about what the premises say." in text
    assert "Which premise is about Socrates?" in text
    seen: list[str] = page.evaluate("window.answerTexts")
    assert not [t for t in seen if VERDICT.search(t)]

    page.reload()
    page.locator("[data-state=connected]").wait_for()
    wait_answers(page, 1)
    stored = last_answer(page)
    assert "The tutor kept this back" in stored
    assert "Which premise is about Socrates?" in stored
    assert not VERDICT.search(stored)
    assert page.locator(f"{TUTOR} [data-testid=kept-back]").count() == 0


def test_attempts_show_not_yet_then_correct(
    hints_live: LiveServer, open_course: Callable[[str], None], new_page: Callable[..., Any]
) -> None:
    """A wrong answer reads "Not yet" with the server's advice; a right one "Correct"."""
    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, hints_live, "euclid")
    choose_problem(page)
    box = page.get_by_label("Your answer")
    feedback = page.locator("[data-testid=feedback]")
    assert feedback.get_attribute("aria-live") == "polite"
    box.fill("It is invalid")
    box.press("Enter")
    feedback.locator("[data-result=not-yet]").wait_for()
    wrong = feedback.inner_text()
    assert wrong.startswith("Not yet")
    assert "page 2" in wrong
    assert "valid" not in wrong.replace("invalid", "")
    page.get_by_label("Your answer").fill("Yes, it's valid.")
    page.get_by_role("button", name="Check").click()
    feedback.locator("[data-result=correct]").wait_for()
    assert feedback.inner_text().startswith("Correct")
    shot(page, "45-attempt-feedback")


def test_hint_only_course_answers_an_explain_question_with_a_hint(
    hints_live: LiveServer, open_course: Callable[[str], None], new_page: Callable[..., Any]
) -> None:
    """Under hints only the page says so by the question box, and Explain gets a hint;
    axe-core finds nothing serious on the hint, its marker and the notices."""
    open_course("hint_only")
    page = new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    sign_in(page, hints_live, "archimedes")
    notice = page.locator("[data-testid=hint-only-notice]")
    notice.wait_for()
    assert notice.inner_text() == "Hints only in this course right now"
    page.evaluate(RECORDER)
    choose_problem(page)
    set_mode(page, "Explain")
    ask(page, "Explain why it is valid or not")
    wait_answers(page, 1)
    answer = page.locator(LAST_TUTOR)
    assert answer.locator("[data-testid=hint-level]").inner_text() == "Hint 1 of 4"
    assert "Answered with a hint" in answer.locator("[data-testid=hint-only-answer]").inner_text()
    assert answer.locator("[data-testid=kept-back]").count() == 1
    seen: list[str] = page.evaluate("window.answerTexts")
    assert not [t for t in seen if VERDICT.search(t)]
    shot(page, "46-hint-only")
    assert violations(page) == []


def test_problem_panel_accessibility_on_a_phone(
    hints_live: LiveServer, open_course: Callable[[str], None], new_page: Callable[..., Any]
) -> None:
    """Keyboard only on a phone: choose the problem, answer it; axe-core finds nothing serious."""
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True)
    sign_in(page, hints_live, "noether-hints")
    toggle = page.locator("[data-testid=problems-toggle]")
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true"
    work = page.locator(PANEL).get_by_role("button", name="Work on this")
    work.focus()
    page.keyboard.press("Enter")
    # Choosing moves the focus to the question box, where the next question goes.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'composer'")
    box = page.get_by_label("Your answer")
    box.focus()
    page.keyboard.type("It is invalid")
    page.keyboard.press("Enter")
    page.locator("[data-testid=feedback] [data-result=not-yet]").wait_for()
    toggle.click()
    page.locator(PANEL).get_by_role("button", name="Working on this").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "47-problems-phone")
    assert violations(page) == []
    stop = page.locator(PANEL).get_by_role("button", name="Stop working on it")
    stop.focus()
    page.keyboard.press("Enter")
    page.locator("[data-testid=working-on]").wait_for(state="detached")
    assert page.evaluate("document.activeElement.dataset.testid") == "problems-toggle"
    assert page.locator("#composer").get_attribute("placeholder") == "Ask about demo…"
