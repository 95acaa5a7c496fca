"""The course selector follows the open conversation; an empty course says what to do."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.conftest import LiveServer, shot, sign_in
from tests.frontend.test_accessibility import violations
from tests.frontend.test_chat_e2e import DONE, ask, session_id
from tests.frontend.test_documents_e2e import make_pdf

DEMO_QUESTION = "How should I weigh evidence from different sources?"
LEARNER_EMPTY = "This course has no material yet; ask your teacher to add some."
FACT = "Basalt forms when lava rich in iron and magnesium cools quickly at the surface."


def course_select(page: Any) -> Any:
    """The header's course selector."""
    return page.get_by_role("combobox", name="Course")


def expect_course(page: Any, course: str) -> None:
    """The selector and the question box both name ``course``."""
    expect(course_select(page)).to_have_value(course)
    expect(page.locator("#composer")).to_have_attribute("placeholder", f"Ask about {course}…")


def test_switching_course_starts_a_new_conversation_there(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """Switching course shows a new, empty conversation there; opening the old one selects demo."""
    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, live, "hopper", courses="demo physics")
    expect_course(page, "demo")
    ask(page, DEMO_QUESTION)
    page.locator(DONE).wait_for(timeout=60_000)
    demo_session = session_id(page)

    course_select(page).select_option("physics")
    expect_course(page, "physics")
    page.wait_for_url(re.compile(r"#/$"))
    page.get_by_role("heading", name="What would you like to understand?").wait_for()
    expect(page.get_by_test_id("message-list")).to_have_count(0)
    expect(page.get_by_test_id("learner-message")).to_have_count(0)
    conversations = page.get_by_role("navigation", name="Your conversations")
    conversations.get_by_text("No conversations in this course yet.").wait_for()
    earlier = page.get_by_test_id("other-courses").get_by_role("link", name=DEMO_QUESTION)
    expect(earlier).to_contain_text("demo")
    shot(page, "30-course-switched")

    earlier.click()
    page.wait_for_url(re.compile(rf"#/s/{re.escape(demo_session)}$"))
    expect_course(page, "demo")
    page.get_by_test_id("learner-message").filter(has_text=DEMO_QUESTION).wait_for()
    page.locator(DONE).wait_for()
    expect(conversations.get_by_role("link", name=DEMO_QUESTION)).to_have_attribute(
        "aria-current", "page"
    )
    shot(page, "31-earlier-conversation-reopened")


def test_a_learner_sees_an_empty_course_say_what_to_do(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """A learner in a course with no documents is told to ask the teacher, also after asking."""
    page = new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    sign_in(page, live, "newcomer", courses="demo geology")
    expect(page.get_by_test_id("course-empty")).to_have_count(0)
    course_select(page).select_option("geology")
    expect_course(page, "geology")
    notice = page.get_by_test_id("course-empty")
    expect(notice).to_have_text(LEARNER_EMPTY)
    expect(notice).to_have_attribute("role", "status")
    expect(page.get_by_role("link", name="Upload a PDF")).to_have_count(0)
    shot(page, "32-empty-course-learner")
    assert violations(page) == []

    ask(page, "What is basalt?")
    page.get_by_test_id("learner-message").filter(has_text="Not sent").wait_for()
    expect(notice).to_have_text(LEARNER_EMPTY)
    shot(page, "33-empty-course-question-refused")


def test_an_instructor_uploads_to_an_empty_course_and_a_reload_keeps_it_selected(
    live: LiveServer, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    """An instructor is offered the upload in an empty course; a reload keeps that course."""
    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, live, "prof-rowan", role="instructor", courses="demo volcanoes")
    course_select(page).select_option("volcanoes")
    notice = page.get_by_test_id("course-empty")
    expect(notice).to_have_text("Upload a PDF to start this course.")
    shot(page, "34-empty-course-instructor")
    notice.get_by_role("link", name="Upload a PDF").click()
    page.get_by_role("heading", name="Course documents: volcanoes").wait_for()
    pdf = make_pdf(tmp_path / "rocks.pdf", ["Igneous rocks", FACT])
    page.get_by_label("PDF file").set_input_files(str(pdf))
    page.get_by_role("button", name="Upload").click()
    page.locator("[data-testid=document][data-status=ready]").wait_for(timeout=120_000)

    page.get_by_role("link", name="Chat").click()
    expect(page.get_by_test_id("course-empty")).to_have_count(0)
    ask(page, "How does basalt form?")
    page.locator(DONE).wait_for(timeout=60_000)
    volcanoes_session = session_id(page)
    page.reload()
    page.wait_for_url(re.compile(rf"#/s/{re.escape(volcanoes_session)}$"))
    page.locator(DONE).wait_for()
    expect_course(page, "volcanoes")
    shot(page, "35-reload-keeps-course")
