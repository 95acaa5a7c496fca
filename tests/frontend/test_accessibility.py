"""The chat UI's pages checked with axe-core (WCAG 2 A and AA rules, contrast included)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.frontend.conftest import REPO, LiveServer, sign_in
from tests.frontend.test_chat_e2e import DONE, QUESTION, ask

AXE = REPO / "frontend" / "node_modules" / "axe-core" / "axe.min.js"


def violations(page: Any) -> list[str]:
    """Serious and critical axe-core findings on the page as it is now.

    The page's CSP refuses injected scripts, so these tests' contexts bypass it.
    """
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make ui` (npm ci installs axe-core)")
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
        })).violations"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_sign_in_page(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """The sign-in page has no serious accessibility problem."""
    page = new_page(bypass_csp=True)
    page.goto(live.url + "/")
    page.get_by_role("heading", name="Sign in on this computer").wait_for()
    assert violations(page) == []


@pytest.mark.parametrize(
    "viewport",
    [{"width": 1280, "height": 800}, {"width": 390, "height": 844}],
    ids=["wide", "phone"],
)
def test_chat_with_an_answer(
    live: LiveServer, new_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    """The chat, with an answer, its sources and badges, has no serious accessibility problem."""
    page = new_page(viewport=viewport, bypass_csp=True)
    sign_in(page, live, f"axe-{viewport['width']}")
    ask(page, QUESTION)
    page.locator(DONE).wait_for(timeout=60_000)
    assert violations(page) == []


def test_documents_view(live: LiveServer, new_page: Callable[..., Any]) -> None:
    """The instructor's documents view has no serious accessibility problem."""
    page = new_page(bypass_csp=True)
    sign_in(page, live, "axe-instructor", role="instructor")
    page.get_by_role("link", name="Documents").click()
    page.get_by_role("heading", name="Course documents: demo").wait_for()
    assert violations(page) == []
