"""The chat UI end to end: a learner in Chromium against a real server on embedded defaults."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.frontend.conftest import LiveServer, ServerProcess, shot, sign_in, token_of

QUESTION = "What makes an argument valid?"
# The answer cache serves a question asked before in full at once: tests that need an
# answer mid-stream ask questions no other test on the same server asks.
PHONE_QUESTION = "What is modus ponens?"
TUTOR = "[data-testid=tutor-message]"
STREAMING = f"{TUTOR}[data-status=streaming]"
DONE = f"{TUTOR}[data-status=done]"


def ask(page: Any, text: str) -> None:
    """Type a question and send it with Enter."""
    composer = page.locator("#composer")
    composer.fill(text)
    composer.press("Enter")


def session_id(page: Any) -> str:
    """The open conversation, from the page's URL."""
    page.wait_for_url(re.compile(r"#/s/"))
    return str(page.url.rsplit("#/s/", 1)[1])


def wait_for_text(page: Any, selector: str, chars: int) -> None:
    """Wait until the last matching answer shows at least ``chars`` characters."""
    page.wait_for_function(
        """([selector, chars]) => {
            const all = document.querySelectorAll(selector);
            const last = all[all.length - 1];
            const text = last && last.querySelector('[data-testid=answer-text] .md');
            return !!text && text.textContent.length >= chars;
        }""",
        arg=[selector, chars],
    )


def shown(text: str) -> str:
    """Text as the page renders it: Markdown markers and quote marks gone, white space collapsed."""
    text = re.sub(r"(?m)^[ \t]*>[ \t]?", "", text)
    return " ".join(re.sub(r"\*\*|__|`", "", text).split())


def stored_answers(live: LiveServer, page: Any, session: str) -> list[dict[str, Any]]:
    """The session's tutor messages as the server stored them."""
    body = live.get(f"/sessions/{session}/messages", token_of(page))
    return [m for m in body["messages"] if m["role"] == "tutor"]


def answer_texts(page: Any) -> list[str]:
    """The rendered text of every answer on the page, in order."""
    texts: list[str] = page.locator(f"{TUTOR} [data-testid=answer-text]").all_inner_texts()
    return [" ".join(t.split()) for t in texts]


def test_answer_streams_in_with_citations(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """A question's answer streams in word by word, then shows its sources."""
    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, live, "ada")
    shot(page, "01-empty-chat")
    ask(page, QUESTION)
    page.locator("[data-testid=learner-message]", has_text=QUESTION).wait_for()
    wait_for_text(page, STREAMING, 40)
    partial = page.locator(f"{STREAMING} [data-testid=answer-text]").inner_text()
    shot(page, "02-answer-streaming")
    page.locator(DONE).wait_for(timeout=60_000)
    final = answer_texts(page)[-1]
    assert len(final) > len(partial)
    citations = page.locator(f"{DONE} [data-testid=citation]")
    assert citations.count() >= 1
    assert "page" in citations.first.inner_text()
    shot(page, "03-answer-with-citations")
    [stored] = stored_answers(live, page, session_id(page))
    assert stored["reason"] == "stop"
    assert final == shown(stored["text"])
    # The conversation is listed, titled by its question.
    page.get_by_role("navigation", name="Your conversations").get_by_text(QUESTION).wait_for()


def test_cached_answer_arrives_whole(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """A question answered before comes from the answer cache at once, marked as such."""
    first = new_page()
    sign_in(first, live, "curie")
    ask(first, QUESTION)
    first.locator(DONE).wait_for(timeout=60_000)
    page = new_page()
    sign_in(page, live, "meitner")
    ask(page, QUESTION)
    page.locator(DONE).wait_for(timeout=10_000)
    assert page.locator(f"{DONE} [data-testid=badge]", has_text="From cache").count() == 1
    assert page.locator(f"{DONE} [data-testid=citation]").count() >= 1
    [stored] = stored_answers(live, page, session_id(page))
    assert stored["cached"] is True
    assert answer_texts(page) == answer_texts(first)


def test_keyboard_only_ask_and_stop(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """Without a mouse: sign in, reach the question box, ask, and stop the answer with Esc."""
    page = new_page()
    page.goto(live.url + "/")
    page.get_by_label("Your name").wait_for()
    page.wait_for_function(
        "document.activeElement && document.activeElement.autocomplete === 'username'"
    )
    page.keyboard.type("grace")  # the name field has focus
    page.keyboard.press("Enter")
    page.locator("[data-state=connected]").wait_for()
    page.keyboard.press("Tab")  # the skip link comes first
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "composer"
    page.keyboard.type("How is correlation different from causation?")
    page.keyboard.press("Enter")
    wait_for_text(page, STREAMING, 20)
    page.keyboard.press("Escape")
    page.locator(DONE).wait_for()
    assert page.locator(f"{DONE} [data-testid=badge]", has_text="Stopped").count() == 1
    [stored] = stored_answers(live, page, session_id(page))
    assert stored["reason"] == "cancelled"


def test_stop_button_cancels_the_answer(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """The Stop button ends a running answer; what was written so far stays."""
    page = new_page()
    sign_in(page, live, "hopper")
    ask(page, "What is the difference between validity and soundness?")
    wait_for_text(page, STREAMING, 30)
    page.get_by_test_id("stop").click()
    page.locator(DONE).wait_for()
    shot(page, "04-stopped")
    assert page.get_by_test_id("stop").count() == 0
    [stored] = stored_answers(live, page, session_id(page))
    assert stored["reason"] == "cancelled"
    assert answer_texts(page)[-1] == shown(stored["text"])
    # The stopped answer is much shorter than a complete one.
    assert page.locator(f"{DONE} [data-testid=badge]", has_text="Stopped").count() == 1


def test_reload_mid_answer_resumes_and_completes(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """Reloading while the answer streams shows it again and it completes, with no gap or repeat."""
    page = new_page()
    sign_in(page, live, "turing")
    ask(page, "Why can a valid argument have a false conclusion?")
    session = session_id(page)
    wait_for_text(page, STREAMING, 60)
    page.reload()
    page.locator("[data-state=connected]").wait_for()
    # Still running after the reload: the answer continues live.
    page.locator(STREAMING).wait_for()
    shot(page, "05-after-reload-streaming")
    page.locator(DONE).wait_for(timeout=60_000)
    assert session_id(page) == session
    [stored] = stored_answers(live, page, session)
    assert stored["reason"] == "stop"
    assert answer_texts(page) == [shown(stored["text"])]
    assert page.locator("[data-testid=learner-message]").count() == 1


def test_second_tab_follows_the_conversation_live(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """A second tab on the conversation shows the first tab's question and answer as they stream."""
    first = new_page()
    sign_in(first, live, "hamilton")
    ask(first, "What is inductive strength?")
    first.locator(DONE).wait_for(timeout=60_000)
    session = session_id(first)

    second = new_page(first.context)  # same browser: shares the sign-in
    second.goto(f"{live.url}/#/s/{session}")
    second.locator(DONE).wait_for()
    second.locator("[data-state=connected]").wait_for()

    follow_up = "How should I weigh evidence from different sources?"
    ask(first, follow_up)
    second.locator("[data-testid=learner-message]", has_text=follow_up).wait_for()
    wait_for_text(second, STREAMING, 20)
    shot(second, "06-second-tab-live")
    first.locator(STREAMING).wait_for(state="detached", timeout=60_000)
    second.locator(STREAMING).wait_for(state="detached", timeout=60_000)
    stored = stored_answers(live, first, session)
    assert len(stored) == 2
    expected = [shown(m["text"]) for m in stored]
    assert answer_texts(first) == expected
    assert answer_texts(second) == expected


def test_dropped_connection_reconnects_and_resumes(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """When the socket drops mid-answer, the page reconnects, resumes, and the answer completes."""
    page = new_page()
    routes: list[Any] = []

    def through(ws: Any) -> None:
        # Pass frames through to the real server, keeping a handle to cut the connection.
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r"/ws$"), through)
    sign_in(page, live, "lovelace")
    ask(page, "What is an argument in standard form?")
    session = session_id(page)
    wait_for_text(page, STREAMING, 40)
    routes[-1].close(code=1011, reason="test drops the connection")
    page.locator("[data-state=reconnecting], [data-state=resumed]").first.wait_for()
    page.locator("[data-state=resumed]").wait_for()
    shot(page, "07-resumed")
    page.locator(DONE).wait_for(timeout=60_000)
    assert len(routes) >= 2
    [stored] = stored_answers(live, page, session)
    assert stored["reason"] == "stop"
    assert answer_texts(page) == [shown(stored["text"])]


def test_server_restart_mid_answer(new_page: Callable[..., Any], tmp_path: Path) -> None:
    """A draining server finishes the running answer; the page then waits for the server
    to come back, reconnects by itself, and the conversation carries on."""
    server = ServerProcess(tmp_path, LIVETUTOR_DRAIN_S="20")
    live = LiveServer(server.url, server.data_dir)
    try:
        page = new_page()
        sign_in(page, live, "restarter")
        ask(page, "What is affirming the consequent?")
        session = session_id(page)
        wait_for_text(page, STREAMING, 20)
        server.terminate()  # SIGTERM: `reconnect` frame, running answers may finish
        page.locator(DONE).wait_for(timeout=60_000)
        page.locator("[data-state=reconnecting]").wait_for(timeout=30_000)
        server.proc.wait(timeout=30)
        shot(page, "12-server-down")
        server = ServerProcess(tmp_path, port=server.port)
        page.locator("[data-state=connected], [data-state=resumed]").first.wait_for(timeout=45_000)
        [stored] = stored_answers(live, page, session)
        assert stored["reason"] == "stop"
        assert answer_texts(page) == [shown(stored["text"])]
        ask(page, "What is a sound argument?")
        page.locator(DONE).nth(1).wait_for(timeout=60_000)
        assert len(stored_answers(live, page, session)) == 2
    finally:
        server.stop()


def test_question_typed_offline_is_sent_on_reconnect(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """A question asked while the connection is down waits in the outbox and is answered after."""
    page = new_page()
    state = {"refuse": False}
    routes: list[Any] = []

    def through(ws: Any) -> None:
        if state["refuse"]:
            ws.close(code=1011, reason="offline")
            return
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r"/ws$"), through)
    sign_in(page, live, "noether")
    state["refuse"] = True
    routes[-1].close(code=1011, reason="offline")
    page.locator("[data-state=reconnecting]").wait_for()
    ask(page, "Which indicator words introduce premises?")
    page.get_by_text("Waiting for the connection").wait_for()
    shot(page, "08-queued-offline")
    state["refuse"] = False
    time.sleep(0.2)
    page.get_by_role("button", name="Retry now").click()
    page.locator(DONE).wait_for(timeout=60_000)
    [stored] = stored_answers(live, page, session_id(page))
    assert answer_texts(page) == [shown(stored["text"])]


def test_phone_sized_screen(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """On a phone-sized screen the conversations fold into a menu and the chat fits."""
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    sign_in(page, live, "mirzakhani")
    assert not page.get_by_role("navigation", name="Your conversations").is_visible()
    ask(page, PHONE_QUESTION)
    page.locator(DONE).wait_for(timeout=60_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    shot(page, "09-phone-answer")
    page.get_by_role("button", name="Show conversations").click()
    page.get_by_role("navigation", name="Your conversations").get_by_text(PHONE_QUESTION).wait_for()
    shot(page, "10-phone-menu")


def test_signed_out_page_offers_sign_in(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """Signed out, the page offers development sign-in and a token box; a bad token is refused."""
    page = new_page()
    page.goto(live.url + "/")
    page.get_by_role("heading", name="Sign in on this computer").wait_for()
    shot(page, "00-sign-in")
    page.get_by_role("textbox", name="Token").fill("not-a-token")
    page.get_by_role("button", name="Use this token").click()
    page.get_by_role("alert").get_by_text("does not look like").wait_for()


def seed_long_session(live: LiveServer, user: str, count: int) -> str:
    """Write a conversation of ``count`` messages straight into the server's SQLite file."""
    session = f"s-long-{user}"
    now = time.time() - count
    with sqlite3.connect(live.data_dir / "livetutor.sqlite3", timeout=10) as db:
        db.execute(
            "INSERT INTO sessions (id, user_id, course, title, created_at, updated_at)"
            " VALUES (?, ?, 'demo', 'A very long conversation', ?, ?)",
            (session, user, now, now + count),
        )
        db.executemany(
            "INSERT INTO messages (id, session_id, seq, role, text, mode, model, created_at)"
            " VALUES (?, ?, ?, ?, ?, 'explain', ?, ?)",
            [
                (
                    f"{session}-{n}",
                    session,
                    n + 1,
                    "learner" if n % 2 == 0 else "tutor",
                    f"Question number {n}?" if n % 2 == 0 else f"Answer number {n}. " * (1 + n % 7),
                    "" if n % 2 == 0 else "offline",
                    now + n,
                )
                for n in range(count)
            ],
        )
    return session


def test_ten_thousand_messages_scroll(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """A 10,000-message conversation opens at its end, pages back to its start, and keeps
    only the messages on screen in the page."""
    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, live, "longwind")  # the user exists once signed in
    session = seed_long_session(live, "longwind", 10_000)
    page.goto(f"{live.url}/#/s/{session}")
    page.get_by_text("Answer number 9999.").first.wait_for()
    listing = page.get_by_test_id("message-list")
    # The session frame brings the last 50 messages at once; the first page of 1,000
    # follows over HTTP.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=message-list]')"
        "?.getAttribute('data-count') === '1000'"
    )
    # Scroll to the top repeatedly: each time the page before is loaded.
    started = time.monotonic()
    for _ in range(30):
        if listing.get_attribute("data-count") == "10000":
            break
        listing.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        page.wait_for_timeout(150)
    assert listing.get_attribute("data-count") == "10000"
    listing.evaluate("el => { el.scrollTop = 0; }")
    page.get_by_text("Question number 0?").wait_for()
    shot(page, "11-ten-thousand-top")
    # Scrolling through the middle keeps the page small and responsive.
    steps = page.evaluate(
        """async el => {
            const times = [];
            for (let i = 1; i <= 40; i++) {
                const t0 = performance.now();
                el.scrollTop = (el.scrollHeight * i) / 41;
                await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                times.push(performance.now() - t0);
            }
            return times;
        }""",
        listing.element_handle(),
    )
    rendered = page.locator("[data-testid=learner-message], [data-testid=tutor-message]").count()
    assert rendered < 80, rendered
    assert sorted(steps)[len(steps) // 2] < 100, steps
    assert time.monotonic() - started < 60
