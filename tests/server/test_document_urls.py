"""Documents added by URL: a URL's credentials are refused and never shown."""

from __future__ import annotations

import string
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.settings import Settings
from knowledge.ingest import new_document_id
from knowledge.vectors import DocumentRecord
from tests.support.documents import bearer
from tests.support.server import RunningServer, run_server

SAFE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=%"
# Prefixed, so that finding one in a response can only mean it leaked.
users = st.text(SAFE, min_size=1, max_size=12).map(lambda u: f"user-{u}")
passwords = st.text(SAFE + ":", min_size=1, max_size=24).map(lambda p: f"secret-{p}")
userinfo = st.one_of(
    st.tuples(users, passwords).map(lambda t: (f"{t[0]}:{t[1]}", t[1])),
    passwords.map(lambda p: (f":{p}", p)),
    passwords.map(lambda p: (p, p)),
)
fuzz = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings(knowledge={"embedder": "hashing"})) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


def instructor(server: RunningServer) -> str:
    return server.token("ines", role="instructor", courses=("harbour",))


@fuzz
@given(credentials=userinfo, path=st.sampled_from(["/guide.pdf", "/", ""]))
async def test_a_url_with_credentials_is_refused(
    server: RunningServer, http: httpx.AsyncClient, credentials: tuple[str, str], path: str
) -> None:
    """POSTing a URL with user:password@ answers 409 rejected, and nothing is registered."""
    info, secret = credentials
    url = f"https://{info}@files.example.org{path}"
    token = instructor(server)
    response = await http.post(
        "/courses/harbour/documents", json={"url": url}, headers=bearer(token)
    )
    assert response.status_code == 409, response.text
    assert response.json() == {
        "error": "rejected",
        "message": "URLs with credentials (user:password@) are not fetched; "
        "give a URL without them",
    }
    listing = await http.get("/courses/harbour/documents", headers=bearer(token))
    assert listing.json()["documents"] == []
    assert secret not in listing.text


@fuzz
@given(credentials=userinfo, path=st.sampled_from(["/guide.pdf", ""]))
async def test_the_document_list_never_shows_a_urls_password(
    server: RunningServer, http: httpx.AsyncClient, credentials: tuple[str, str], path: str
) -> None:
    """A document registered with credentials before they were refused is listed without them."""
    info, secret = credentials
    url = f"https://{info}@files.example.org{path}"
    kb = server.runtime.courses.ingest.kb
    kb.ensure_course("harbour")
    # As earlier versions stored it: the URL whole, the title cut from its last part.
    title = url.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "document"
    record = DocumentRecord(id=new_document_id(), course="harbour", title=title, url=url)
    kb.put_document(record)
    token = instructor(server)
    listing = await http.get("/courses/harbour/documents", headers=bearer(token))
    one = await http.get(f"/documents/{record.id}", headers=bearer(token))
    shown = next(d for d in listing.json()["documents"] if d["id"] == record.id)
    assert shown == one.json()
    assert shown["url"] == f"https://files.example.org{path}"
    assert secret not in listing.text and secret not in one.text
