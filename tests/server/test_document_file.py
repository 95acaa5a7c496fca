"""``GET /documents/{id}/file``: the PDF itself, inline, course-scoped, with byte ranges."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pypdf import PdfReader

from core.settings import Settings
from knowledge.demo_course import DEMO_DOCUMENT_ID, demo_pdf
from tests.support.documents import ask, bearer, upload, wait_document
from tests.support.pdfs import HARBOUR_FACTS, make_pdf
from tests.support.server import RunningServer, run_server

HARBOUR = make_pdf(HARBOUR_FACTS, title="Harbour Guide")
SIZE = len(HARBOUR)


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    settings = make_settings(knowledge={"embedder": "hashing", "max_pages": 20})
    async with run_server(settings) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


def instructor(server: RunningServer) -> str:
    return server.token("ines", role="instructor", courses=("harbour",))


def learner(server: RunningServer) -> str:
    return server.token("lea", courses=("harbour",))


@pytest.fixture
async def doc_id(server: RunningServer, http: httpx.AsyncClient) -> str:
    """The harbour guide, uploaded and indexed."""
    response = await upload(http, "harbour", HARBOUR, instructor(server), name="harbour.pdf")
    assert response.status_code == 202, response.text
    doc = str(response.json()["id"])
    await wait_document(http, doc, instructor(server))
    return doc


async def test_a_learner_of_the_course_gets_the_pdf_inline(
    server: RunningServer, http: httpx.AsyncClient, doc_id: str
) -> None:
    """The whole file, as the uploaded bytes, shown inline and kept by no shared cache."""
    response = await http.get(f"/documents/{doc_id}/file", headers=bearer(learner(server)))
    assert response.status_code == 200
    assert response.content == HARBOUR
    headers = response.headers
    assert headers["content-type"] == "application/pdf"
    assert headers["content-length"] == str(SIZE)
    assert headers["content-disposition"] == 'inline; filename="Harbour Guide.pdf"'
    assert headers["accept-ranges"] == "bytes"
    assert headers["cache-control"] == "private, no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["etag"] == f'"{hashlib.sha256(HARBOUR).hexdigest()}"'
    head = await http.head(f"/documents/{doc_id}/file", headers=bearer(learner(server)))
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(SIZE)


@pytest.mark.parametrize(
    ("given", "start", "stop"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=100-", 100, SIZE),
        ("bytes=-50", SIZE - 50, SIZE),
        ("bytes=200-299", 200, 300),
        ("bytes=10-99999999", 10, SIZE),
        # A suffix longer than the file is the whole file.
        (f"bytes=-{SIZE + 100}", 0, SIZE),
    ],
)
async def test_one_byte_range_is_206_with_its_content_range(
    server: RunningServer, http: httpx.AsyncClient, doc_id: str, given: str, start: int, stop: int
) -> None:
    """``Range: bytes=a-b``, ``a-`` and ``-n`` answer 206 with exactly those bytes."""
    headers = {**bearer(learner(server)), "range": given}
    response = await http.get(f"/documents/{doc_id}/file", headers=headers)
    assert response.status_code == 206
    assert response.content == HARBOUR[start:stop]
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response.headers["content-length"] == str(stop - start)
    assert response.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize("given", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}"])
async def test_a_range_past_the_end_is_416(
    server: RunningServer, http: httpx.AsyncClient, doc_id: str, given: str
) -> None:
    """A range that starts past the end: 416 with the file's length and a JSON error."""
    headers = {**bearer(learner(server)), "range": given}
    response = await http.get(f"/documents/{doc_id}/file", headers=headers)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.json()["error"] == "range_not_satisfiable"


@pytest.mark.parametrize(
    "given", ["bytes=abc", "pages=1-2", "bytes=0-1,5-9", "bytes=9-2", "bytes=-0"]
)
async def test_a_range_it_does_not_serve_gets_the_whole_file(
    server: RunningServer, http: httpx.AsyncClient, doc_id: str, given: str
) -> None:
    """Malformed ranges, other units and several ranges are ignored: 200 and every byte."""
    headers = {**bearer(learner(server)), "range": given}
    response = await http.get(f"/documents/{doc_id}/file", headers=headers)
    assert response.status_code == 200
    assert response.content == HARBOUR


async def test_if_range_sends_the_range_only_for_the_same_version(
    server: RunningServer, http: httpx.AsyncClient, doc_id: str
) -> None:
    """If-Range with the file's ETag gets the range; another ETag or a date the whole file."""
    token = learner(server)
    etag = (await http.get(f"/documents/{doc_id}/file", headers=bearer(token))).headers["etag"]
    url = f"/documents/{doc_id}/file"
    same = await http.get(url, headers={**bearer(token), "range": "bytes=0-3", "if-range": etag})
    assert (same.status_code, same.content) == (206, HARBOUR[:4])
    for other in ('"0000"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
        headers = {**bearer(token), "range": "bytes=0-3", "if-range": other}
        response = await http.get(url, headers=headers)
        assert (response.status_code, response.content) == (200, HARBOUR)


async def test_errors_are_those_of_the_document_route(
    server: RunningServer, http: httpx.AsyncClient, doc_id: str
) -> None:
    """No token, a forged token, another course's learner, an unknown id: as GET /documents/{id}."""
    forged = learner(server)[:-4] + "AAAA"
    outsider = server.token("otto", courses=("glaciers",))
    cases = [
        ({}, doc_id, 401, "unauthorized"),
        (bearer(forged), doc_id, 401, "unauthorized"),
        (bearer(outsider), doc_id, 404, "document_unknown"),
        (bearer(learner(server)), "0" * 32, 404, "document_unknown"),
        (bearer(learner(server)), "not-an-id", 404, "document_unknown"),
    ]
    for headers, target, status, code in cases:
        record = await http.get(f"/documents/{target}", headers=headers)
        response = await http.get(f"/documents/{target}/file", headers=headers)
        assert (response.status_code, response.json()["error"]) == (status, code), target
        assert response.json() == record.json()
        assert response.status_code == record.status_code


async def test_a_deleted_document_has_no_file(
    server: RunningServer, http: httpx.AsyncClient, doc_id: str
) -> None:
    """After DELETE the file route answers 404 document_unknown."""
    deleted = await http.delete(f"/documents/{doc_id}", headers=bearer(instructor(server)))
    assert deleted.status_code == 200
    response = await http.get(f"/documents/{doc_id}/file", headers=bearer(learner(server)))
    assert (response.status_code, response.json()["error"]) == (404, "document_unknown")


async def test_a_url_that_was_never_fetched_has_no_file(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A registered URL whose fetch was refused: 404 file_unknown."""
    response = await http.post(
        "/courses/harbour/documents",
        json={"url": "http://127.0.0.1:9/guide.pdf"},
        headers=bearer(instructor(server)),
    )
    assert response.status_code == 202, response.text
    doc = response.json()["id"]
    view = await wait_document(http, doc, instructor(server))
    assert view["status"] == "failed"
    response = await http.get(f"/documents/{doc}/file", headers=bearer(learner(server)))
    assert (response.status_code, response.json()["error"]) == (404, "file_unknown")


async def test_a_file_lost_from_storage_is_503(
    server: RunningServer, http: httpx.AsyncClient, doc_id: str
) -> None:
    """The record is there but its stored file is gone: 503 unavailable, not a broken PDF."""
    stored = list((server.runtime.settings.data_dir / "documents").rglob("*"))
    files = [path for path in stored if path.is_file()]
    assert len(files) == 1
    files[0].unlink()
    response = await http.get(f"/documents/{doc_id}/file", headers=bearer(learner(server)))
    assert (response.status_code, response.json()["error"]) == (503, "unavailable")


async def test_demo_citations_open_the_bundled_pdf(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A demo answer cites document ``demo``; its file is the demo PDF with the cited page."""
    async with await server.client("dora") as client:
        _, sources = await ask(client, "What makes a deductive argument valid?", "demo")
    assert sources[0]["document_id"] == DEMO_DOCUMENT_ID
    assert sources[0]["page"] == 2
    response = await http.get(
        f"/documents/{sources[0]['document_id']}/file", headers=bearer(server.token("dora"))
    )
    assert response.status_code == 200
    assert response.content == demo_pdf()
    assert response.headers["content-disposition"].startswith("inline;")
    page = PdfReader(io.BytesIO(response.content)).pages[sources[0]["page"] - 1]
    snippet = sources[0]["snippet"].rstrip("…")
    assert " ".join(snippet.split()) in " ".join(page.extract_text().split())


async def test_the_demo_file_needs_the_demo_course(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A token without course ``demo`` gets 404 document_unknown for the demo file."""
    response = await http.get("/documents/demo/file", headers=bearer(learner(server)))
    assert (response.status_code, response.json()["error"]) == (404, "document_unknown")
    response = await http.get("/documents/demo/file")
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
