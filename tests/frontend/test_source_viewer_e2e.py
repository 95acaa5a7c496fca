"""The source viewer: a citation opens the cited PDF at the cited page, the snippet highlighted.

Needs ``GET /documents/{id}/file`` and ``document_id`` in ``stream.end.sources``;
the demo course's citations open its bundled PDF (document ``demo``).
"""

from __future__ import annotations

import unicodedata
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.conftest import LiveServer, shot, sign_in, token_of
from tests.frontend.test_accessibility import violations
from tests.frontend.test_chat_e2e import DONE, ask
from tests.support.pdfs import HARBOUR_FACTS, make_pdf

VIEWER = "[data-testid=source-viewer]"
HIGHLIGHT = f"{VIEWER} .textLayer .highlight"


def fold(text: str) -> str:
    """Letters and digits only, lower-cased: how the viewer compares a snippet with the page."""
    text = unicodedata.normalize("NFKD", text).lower()
    return "".join(ch for ch in text if ch.isalnum())


def focus_in_viewer(page: Any) -> bool:
    found: bool = page.evaluate(
        "() => !!document.activeElement?.closest('[data-testid=source-viewer]')"
    )
    return found


def open_citation(page: Any, page_number: int, keyboard: bool = False) -> tuple[Any, str]:
    """Open the last answer's first citation of ``page_number``; return it and its snippet.

    ``keyboard``: focus the citation and press Enter instead of clicking.
    """
    citation = (
        page.locator(f"{DONE} [data-testid=citation]")
        .filter(has=page.get_by_test_id("open-source").filter(has_text=f"page {page_number}"))
        .first
    )
    snippet = citation.locator("p[title]").get_attribute("title") or ""
    button = citation.get_by_test_id("open-source")
    if keyboard:
        button.focus()
        page.keyboard.press("Enter")
    else:
        button.click()
    page.locator(VIEWER).wait_for()
    return button, snippet


def highlighted(page: Any) -> str:
    page.locator(HIGHLIGHT).first.wait_for()
    return " ".join(page.locator(HIGHLIGHT).all_text_contents())


def test_a_citation_opens_the_uploaded_pdf_at_the_cited_page(
    live: LiveServer, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    """Upload, ask, click the citation: page 2 shows with the snippet highlighted; Esc closes."""
    page = new_page(viewport={"width": 1280, "height": 800})
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    sign_in(page, live, "prof-ada", role="instructor", courses="harbour-view")
    page.get_by_role("link", name="Documents").click()
    pdf = tmp_path / "harbour-guide.pdf"
    pdf.write_bytes(make_pdf(HARBOUR_FACTS, title="Harbour Guide"))
    page.get_by_label("PDF file").set_input_files(str(pdf))
    page.get_by_role("button", name="Upload").click()
    page.locator("[data-testid=document][data-status=ready]").wait_for(timeout=120_000)
    page.get_by_role("link", name="Chat").click()
    ask(page, "Who built the Varnholm lighthouse?")
    page.locator(DONE).wait_for(timeout=60_000)

    button, snippet = open_citation(page, 2)
    viewer = page.locator(VIEWER)
    assert focus_in_viewer(page)
    assert viewer.get_by_role("heading").inner_text() == "Harbour Guide"
    assert viewer.get_by_test_id("viewer-page").get_attribute("data-page") == "2"
    expect(viewer.get_by_test_id("viewer-page")).to_have_text("Page 2 of 4")
    marked = highlighted(page)
    assert fold(snippet.rstrip("…")) in fold(marked)
    assert viewer.get_by_test_id("viewer-found").get_attribute("data-found") == "whole"
    # Beside the chat, not over it.
    box = viewer.bounding_box()
    assert box is not None and box["x"] > 400 and box["width"] < 1280 - 400
    assert page.locator("#composer").is_visible()
    shot(page, "40-source-viewer")

    viewer.get_by_role("button", name="Next page").click()
    page.locator(f"{VIEWER} [data-testid=viewer-canvas][data-page='3']").wait_for()
    expect(viewer.get_by_test_id("viewer-page")).to_have_text("Page 3 of 4")
    # pdf.js lays the text over the canvas after drawing it: wait for it.
    expect(viewer.locator(".textLayer")).to_contain_text("Fishing Fleet")
    expect(page.locator(HIGHLIGHT)).to_have_count(0)
    viewer.get_by_role("button", name="Back to page 2").click()
    assert fold(snippet.rstrip("…")) in fold(highlighted(page))

    page.keyboard.press("Escape")
    viewer.wait_for(state="detached")
    assert button.evaluate("el => el === document.activeElement")
    assert not [line for line in console if "Content Security Policy" in line], console

    # Once the document is deleted, its citation says so instead of showing a broken page.
    doc_id = live.get("/courses/harbour-view/documents", token_of(page))["documents"][0]["id"]
    request = urllib.request.Request(
        f"{live.url}/documents/{doc_id}",
        method="DELETE",
        headers={"authorization": f"Bearer {token_of(page)}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    button.click()
    expect(viewer.get_by_role("alert")).to_have_text("This document is no longer available to you.")


def test_on_a_phone_the_demo_citation_opens_full_screen(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """A demo course citation opens its bundled PDF covering the phone's screen; Esc closes."""
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    sign_in(page, live, "pip")
    ask(page, "What makes a deductive argument valid?")
    page.locator(DONE).wait_for(timeout=60_000)
    button, snippet = open_citation(page, 2)
    viewer = page.locator(VIEWER)
    assert viewer.get_by_test_id("viewer-page").get_attribute("data-page") == "2"
    assert viewer.get_by_role("heading").inner_text() == "Thinking Clearly (demo course)"
    assert fold(snippet.rstrip("…")) in fold(highlighted(page))
    box = viewer.bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    assert viewer.get_attribute("aria-modal") == "true"
    shot(page, "41-source-viewer-phone")

    # Zoomed in, the page is wider than the phone and the cited text is still marked.
    fit = page.get_by_test_id("viewer-canvas").bounding_box()
    viewer.get_by_role("button", name="Zoom in").click()
    expect(viewer.get_by_test_id("viewer-zoom")).to_have_text("150%")
    page.wait_for_function(
        "w => document.querySelector('[data-testid=viewer-canvas]').offsetWidth > w",
        arg=fit["width"] * 1.4,
    )
    assert fold(snippet.rstrip("…")) in fold(highlighted(page))

    # The keyboard stays in the viewer while it covers the screen.
    for _ in range(8):
        page.keyboard.press("Tab")
        assert focus_in_viewer(page)
    page.keyboard.press("Escape")
    viewer.wait_for(state="detached")
    assert button.evaluate("el => el === document.activeElement")


def test_the_open_viewer_has_no_serious_accessibility_problem(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """Opened from the keyboard, the viewer has no serious or critical WCAG A/AA problem."""
    page = new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    sign_in(page, live, "axe-viewer")
    ask(page, "How should I weigh evidence from a source?")
    page.locator(DONE).wait_for(timeout=60_000)
    open_citation(page, 4, keyboard=True)
    assert focus_in_viewer(page)
    highlighted(page)
    expect(page.locator(VIEWER).get_by_test_id("viewer-page")).to_have_text("Page 4 of 8")
    assert violations(page) == []
    shot(page, "42-source-viewer-demo")
