"""The chat UI against the documents API and typing predictions.

These need ``POST /courses/{course}/documents``, ``GET /documents/{id}``,
``GET /courses/{course}/documents``, the ``document.progress`` frame and the
``predictions`` frame answering ``typing``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.frontend.conftest import LiveServer, shot, sign_in
from tests.frontend.test_chat_e2e import DONE, STREAMING, ask

UNIQUE = "Photosynthesis converts light energy into chemical energy stored in glucose."


def make_pdf(path: Path, lines: list[str]) -> Path:
    """A one-page PDF with ``lines`` of text, built by hand (no PDF library needed)."""
    text = "BT /F1 14 Tf 72 720 Td 18 TL " + " ".join(
        "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*"
        for line in lines
    )
    stream = text + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    path.write_bytes(out)
    return path


def test_instructor_uploads_a_pdf_and_watches_it_index(
    live: LiveServer, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    """An instructor uploads a PDF, sees it queued and indexing, then ready; answers cite it."""
    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, live, "prof-oak", role="instructor")
    page.get_by_role("link", name="Documents").click()
    page.get_by_role("heading", name="Course documents: demo").wait_for()
    pdf = make_pdf(tmp_path / "biology-notes.pdf", ["Biology notes", UNIQUE])
    page.get_by_label("PDF file").set_input_files(str(pdf))
    page.get_by_role("button", name="Upload").click()
    row = page.get_by_test_id("document").filter(has_text="biology-notes")
    row.wait_for()
    shot(page, "20-document-uploaded")
    page.get_by_test_id("document").and_(page.locator("[data-status=ready]")).wait_for(
        timeout=120_000
    )
    shot(page, "21-document-ready")
    page.get_by_role("link", name="Chat").click()
    ask(page, "How does photosynthesis store energy?")
    page.locator(DONE).wait_for(timeout=60_000)
    assert "glucose" in page.locator(DONE).last.inner_text()
    assert page.locator(f"{DONE} [data-testid=citation]").count() >= 1
    shot(page, "22-answer-cites-upload")


def test_a_failed_upload_shows_its_reason(
    live: LiveServer, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    """A file that is not a PDF ends as failed, with the reason shown."""
    page = new_page()
    sign_in(page, live, "prof-elm", role="instructor")
    page.get_by_role("link", name="Documents").click()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    page.get_by_label("PDF file").set_input_files(str(broken))
    page.get_by_role("button", name="Upload").click()
    failed = page.locator("[data-testid=document][data-status=failed]")
    alert = page.get_by_role("alert")
    failed.or_(alert).first.wait_for(timeout=60_000)
    shot(page, "23-document-failed")


def test_typing_predictions_accept_with_tab_or_click(
    live: LiveServer, new_page: Callable[..., Any]
) -> None:
    """Suggestions appear while typing; Tab accepts the highlighted one, a click another."""
    page = new_page()
    sign_in(page, live, "sage")
    # Questions asked before give the predictions something to draw on.
    for question in ("What is a valid argument?", "How do I weigh evidence from sources?"):
        ask(page, question)
        page.locator(DONE).last.wait_for(timeout=60_000)
        page.get_by_role("button", name="+ New conversation").click()
    composer = page.locator("#composer")
    composer.click()
    composer.press_sequentially("What is a val", delay=40)
    options = page.get_by_test_id("predictions").get_by_role("option")
    options.first.wait_for()
    shot(page, "24-predictions")
    first = options.first.inner_text()
    composer.press("Tab")
    assert composer.input_value() == first
    assert page.evaluate("document.activeElement.id") == "composer"
    composer.fill("")
    composer.press_sequentially("How do I weigh ev", delay=40)
    options.first.wait_for()
    chosen = options.last.inner_text()
    options.last.click()
    assert composer.input_value() == chosen
    composer.press("Enter")
    page.locator(STREAMING).or_(page.locator(DONE)).first.wait_for()
