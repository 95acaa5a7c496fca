"""Course documents over HTTP on embedded defaults: upload, index, ask, cite, delete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from cache.answers import answer_key
from core.settings import Settings
from core.text import normalise
from realtime.client import TutorClient
from tests.support.documents import ask, bearer, upload, wait_document
from tests.support.pdfs import (
    GLACIER_FACTS,
    HARBOUR_FACTS,
    decompression_bomb,
    make_pdf,
    many_pages,
)
from tests.support.server import RunningServer, run_server

HARBOUR = make_pdf(HARBOUR_FACTS, title="Harbour Guide")
GLACIERS = make_pdf(GLACIER_FACTS, title="Glaciers")


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    """Embedded server with the fast lexical embedder and a small page cap."""
    settings = make_settings(knowledge={"embedder": "hashing", "max_pages": 20})
    async with run_server(settings) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


def instructor(server: RunningServer, *courses: str, user: str = "ines") -> str:
    return server.token(user, role="instructor", courses=courses or ("harbour",))


async def add(http: httpx.AsyncClient, server: RunningServer, course: str, data: bytes) -> str:
    response = await upload(http, course, data, instructor(server, course))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return str(response.json()["id"])


async def test_uploaded_pdf_is_indexed_and_the_right_page_is_cited(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A learner's question about a fact on page 2 gets page 2 cited, with id and title."""
    doc_id = await add(http, server, "harbour", HARBOUR)
    view = await wait_document(http, doc_id, instructor(server))
    assert (view["status"], view["pages"], view["title"]) == ("ready", 4, "Harbour Guide")
    assert view["progress"] == 1.0 and view["chunks"] >= 4
    token = server.token("lea", courses=("harbour",))
    async with await TutorClient.connect(server.ws_url, token) as learner:
        text, sources = await ask(learner, "Who built the Varnholm lighthouse?", "harbour")
    assert sources[0]["page"] == 2
    assert sources[0]["document_id"] == doc_id
    assert sources[0]["title"] == "Harbour Guide"
    assert "Matilda Crane" in sources[0]["snippet"] or "Matilda Crane" in text
    assert "p. 2" in text


async def test_same_pdf_twice_is_indexed_once(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """Uploading identical bytes again returns the first document, not a second copy."""
    doc_id = await add(http, server, "harbour", HARBOUR)
    await wait_document(http, doc_id, instructor(server))
    again = await upload(http, "harbour", HARBOUR, instructor(server), name="copy.pdf")
    assert again.status_code == 200
    assert again.json() == {"id": doc_id, "status": "ready", "course": "harbour", "duplicate": True}
    listing = await http.get("/courses/harbour/documents", headers=bearer(instructor(server)))
    assert [d["id"] for d in listing.json()["documents"]] == [doc_id]


async def test_learners_cannot_add_or_delete(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A learner gets 403 role_forbidden; an instructor of another course course_forbidden."""
    learner = server.token("lea", courses=("harbour",))
    response = await upload(http, "harbour", HARBOUR, learner)
    assert response.status_code == 403
    assert response.json()["error"] == "role_forbidden"
    other = server.token("otto", role="instructor", courses=("glaciers",))
    response = await upload(http, "harbour", HARBOUR, other)
    assert (response.status_code, response.json()["error"]) == (403, "course_forbidden")
    response = await http.post("/courses/harbour/documents", files={"file": ("a.pdf", HARBOUR)})
    assert response.status_code == 401
    doc_id = await add(http, server, "harbour", HARBOUR)
    response = await http.delete(f"/documents/{doc_id}", headers=bearer(learner))
    assert (response.status_code, response.json()["error"]) == (403, "role_forbidden")
    listing = await http.get("/courses/harbour/documents", headers=bearer(learner))
    assert [d["id"] for d in listing.json()["documents"]] == [doc_id]


async def test_courses_are_isolated(server: RunningServer, http: httpx.AsyncClient) -> None:
    """A question in one course never cites another course's document."""
    harbour_id = await add(http, server, "harbour", HARBOUR)
    glacier_id = await add(http, server, "glaciers", GLACIERS)
    await wait_document(http, harbour_id, instructor(server))
    await wait_document(http, glacier_id, instructor(server, "glaciers"))
    token = server.token("lea", courses=("harbour", "glaciers"))
    async with await TutorClient.connect(server.ws_url, token) as learner:
        _, sources = await ask(learner, "How do glaciers move by creep?", "harbour")
        assert sources == [] or {s["document_id"] for s in sources} == {harbour_id}
        _, sources = await ask(learner, "How do glaciers move by creep?", "glaciers")
        assert {s["document_id"] for s in sources} == {glacier_id}
        assert sources[0]["page"] == 2
    outsider = instructor(server, "harbour")
    response = await http.get(f"/documents/{glacier_id}", headers=bearer(outsider))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (make_pdf(HARBOUR_FACTS, encrypt_password="secret"), "encrypted"),
        (many_pages(25), "25 pages; the limit is 20"),
        (decompression_bomb(), "decompression bomb"),
        (b"%PDF-1.7\n" + b"\x00garbage" * 500, "not a readable PDF"),
    ],
    ids=["encrypted", "too-many-pages", "decompression-bomb", "broken"],
)
async def test_hostile_pdfs_fail_with_a_reason_and_a_dead_letter(
    server: RunningServer, http: httpx.AsyncClient, data: bytes, reason: str
) -> None:
    """Each hostile file ends failed with its reason, once, and is kept as a dead letter."""
    doc_id = await add(http, server, "harbour", data)
    view = await wait_document(http, doc_id, instructor(server))
    assert view["status"] == "failed"
    assert reason in view["reason"]
    letters = server.runtime.courses.ingest.kb.dead_letters()
    assert [(d.document, d.attempts) for d in letters] == [(doc_id, 1)]


async def test_a_file_that_only_claims_to_be_a_pdf_is_refused(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A non-PDF sent as application/pdf is refused at once with 415."""
    response = await upload(http, "harbour", b"<html>not a pdf</html>", instructor(server))
    assert (response.status_code, response.json()["error"]) == (415, "not_pdf")


async def test_oversized_upload_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    """A file over LIVETUTOR_MAX_UPLOAD_BYTES gets 413 and nothing is stored."""
    settings = make_settings(knowledge={"embedder": "hashing", "max_upload_bytes": 2000})
    async with run_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            response = await upload(http, "harbour", HARBOUR, instructor(server))
            assert (response.status_code, response.json()["error"]) == (413, "too_large")
            listing = await http.get(
                "/courses/harbour/documents", headers=bearer(instructor(server))
            )
            assert listing.json()["documents"] == []


async def test_delete_removes_chunks_and_changes_the_index_version(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """After DELETE the document is gone, answers no longer cite it, the version moved."""
    retriever = server.runtime.retriever
    doc_id = await add(http, server, "harbour", HARBOUR)
    await wait_document(http, doc_id, instructor(server))
    indexed = await retriever.index_version("harbour")
    assert indexed
    response = await http.delete(f"/documents/{doc_id}", headers=bearer(instructor(server)))
    assert response.json() == {"id": doc_id, "status": "deleted", "course": "harbour"}
    assert (
        await http.get(f"/documents/{doc_id}", headers=bearer(instructor(server)))
    ).status_code == 404
    assert await retriever.index_version("harbour") != indexed
    assert await retriever.retrieve("harbour", "Who built the Varnholm lighthouse?", 4) == []
    doc_id = await add(http, server, "harbour", HARBOUR)
    await wait_document(http, doc_id, instructor(server))
    assert await retriever.index_version("harbour") == indexed


async def test_progress_frames_reach_the_uploader(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """The instructor's open connection gets document.progress frames up to ready."""
    token = instructor(server)
    async with await TutorClient.connect(server.ws_url, token) as socket:
        doc_id = await add(http, server, "harbour", HARBOUR)
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["status"] != "ready":
            frames.append(await socket.wait_for(lambda f: f["type"] == "document.progress"))
    assert {f["document"] for f in frames} == {doc_id}
    assert {f["course"] for f in frames} == {"harbour"}
    assert "indexing" in [f["status"] for f in frames]
    progress = [f["progress"] for f in frames]
    assert progress == sorted(progress) and progress[-1] == 1.0


async def test_typing_gets_predictions_from_the_course(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """Typing part of a heading's word predicts the heading; latency is recorded."""
    doc_id = await add(http, server, "harbour", HARBOUR)
    await wait_document(http, doc_id, instructor(server))
    token = server.token("lea", courses=("harbour", "demo"))
    async with await TutorClient.connect(server.ws_url, token) as learner:
        items: list[str] = []
        sent = 0
        for _ in range(100):
            sent += 1
            await learner.send(
                {"type": "typing", "course": "harbour", "text": "tell me about lightho"}
            )
            frame = await learner.wait_for(lambda f: f["type"] == "predictions")
            items = frame["items"]
            if items:
                break
            await asyncio.sleep(0.05)  # the course's phrases are built in the background
        assert frame["text"] == "tell me about lightho"
        assert "The Varnholm Lighthouse" in items and len(items) <= 5
        sent += 1
        await learner.send(
            {"type": "typing", "course": "demo", "text": "what makes an argument val"}
        )
        frame = await learner.wait_for(lambda f: f["type"] == "predictions")
        assert any("valid" in item.lower() for item in frame["items"])
        question = "Who built the Varnholm lighthouse?"
        sent += 1
        await learner.send({"type": "typing", "course": "harbour", "text": question})
        await learner.wait_for(lambda f: f["type"] == "predictions" and f["text"] == question)
        # Warmed as a shared ask retrieves it: normalised.
        warmed = normalise(question)
        for _ in range(100):  # the question's embedding is warmed in the background
            if server.runtime.courses.retriever.cached(warmed):
                break
            await asyncio.sleep(0.02)
        assert server.runtime.courses.retriever.cached(warmed)
        await learner.send({"type": "typing", "course": "secret", "text": "x", "id": "t1"})
        error = await learner.wait_for(lambda f: f["type"] == "error")
        assert (error["code"], error["ref"]) == ("course_forbidden", "t1")
    metrics = server.runtime.metrics.render().decode()
    assert f"prediction_latency_seconds_count {float(sent)}" in metrics


async def test_demo_course_still_answers(server: RunningServer) -> None:
    """The bundled demo course answers with its pages on embedded defaults."""
    async with await server.client() as learner:
        _, sources = await ask(learner, "What makes an argument valid?", "demo")
    assert sources and sources[0]["title"] == sources[0]["document"]


async def test_default_embedder_answers_a_paraphrase(
    make_settings: Callable[..., Settings],
) -> None:
    """On the defaults (MiniLM plus lexical fusion), a reworded question finds its page."""
    async with run_server(make_settings()) as server:
        assert server.runtime.courses.ingest.embedder.name == "all-MiniLM-L6-v2-int8"
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            doc_id = await add(http, server, "glaciers", GLACIERS)
            await wait_document(http, doc_id, instructor(server, "glaciers"))
        token = server.token("lea", courses=("glaciers",))
        async with await TutorClient.connect(server.ws_url, token) as learner:
            _, sources = await ask(
                learner, "What pile of rubble marks how far the ice sheet reached?", "glaciers"
            )
    assert sources[0]["page"] == 3


async def test_openai_compatible_embeddings_endpoint(
    make_settings: Callable[..., Settings],
) -> None:
    """With LIVETUTOR_EMBEDDER=openai, chunks and questions are embedded by the endpoint."""
    from tests.support.fake_openai import run_fake_openai

    async with run_fake_openai() as fake:
        settings = make_settings(
            llm={"base_url": fake.base_url, "api_key": "k", "provider": "offline"},
            knowledge={"embedder": "openai", "embeddings_model": "embed-small", "hybrid": False},
        )
        async with run_server(settings) as server:
            async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
                doc_id = await add(http, server, "harbour", HARBOUR)
                view = await wait_document(http, doc_id, instructor(server))
            assert view["status"] == "ready", view
            token = server.token("lea", courses=("harbour",))
            async with await TutorClient.connect(server.ws_url, token) as learner:
                _, sources = await ask(learner, "Who built the Varnholm lighthouse?", "harbour")
    assert sources[0]["page"] == 2
    assert {r["model"] for r in fake.embedding_requests} == {"embed-small"}
    # Retrieved for the question as shared answers are: normalised.
    assert fake.embedding_requests[-1]["input"] == ["who built the varnholm lighthouse"]


async def test_chunked_upload_over_the_cap_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    """Without Content-Length, the body is still cut off at the cap."""
    settings = make_settings(knowledge={"embedder": "hashing", "max_upload_bytes": 2000})
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()

    async def body() -> Any:
        yield head + b"%PDF-1.4\n"
        for _ in range(200):
            yield b"x" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    async with run_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            response = await http.post(
                "/courses/harbour/documents",
                content=body(),
                headers={
                    **bearer(instructor(server)),
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )
    assert (response.status_code, response.json()["error"]) == (413, "too_large")


async def test_transient_failures_are_retried_then_dead_lettered(
    make_settings: Callable[..., Settings],
) -> None:
    """A flaky URL is retried until it answers; one that never does ends as a dead letter."""
    from tests.support.files import Route, file_server

    settings = make_settings(
        knowledge={
            "embedder": "hashing",
            "fetch_allowlist": ("localhost",),
            "task_max_retries": 2,
            "task_backoff_s": 0.01,
        }
    )
    with file_server() as files:
        files.routes["/flaky.pdf"] = Route(body=HARBOUR, fail_first=2)
        files.routes["/down.pdf"] = Route(body=GLACIERS, fail_first=100)
        async with run_server(settings) as server:
            async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
                token = instructor(server)
                views = []
                for path in ("/flaky.pdf", "/down.pdf"):
                    response = await http.post(
                        "/courses/harbour/documents",
                        json={"url": files.url(path, "localhost")},
                        headers=bearer(token),
                    )
                    assert response.status_code == 202, response.text
                    views.append(await wait_document(http, response.json()["id"], token))
            letters = server.runtime.courses.ingest.kb.dead_letters()
    assert views[0]["status"] == "ready" and views[0]["title"] == "Harbour Guide"
    assert files.hits.count("/flaky.pdf") == 3
    assert views[1]["status"] == "failed"
    assert views[1]["reason"] == "gave up after 3 attempts (KnowledgeUnavailable)"
    assert files.hits.count("/down.pdf") == 3
    assert [(d.document, d.attempts) for d in letters] == [(views[1]["id"], 3)]


async def test_progress_reaches_the_session_named_at_upload(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A tab that opened the uploader's session sees the progress; others' sessions are refused."""
    token = server.token("ines", role="instructor", courses=("harbour", "demo"))
    async with await TutorClient.connect(server.ws_url, token) as first:
        ask_id = await first.ask("What is a premise?", course="demo")
        session = (await first.answer(ask_id, timeout_s=30)).session
    lea = server.token("lea", courses=("demo",))
    async with await TutorClient.connect(server.ws_url, lea) as other:
        other_session = (await other.answer(await other.ask("Hi?", course="demo"))).session
    refused = await http.post(
        "/courses/harbour/documents",
        files={"file": ("a.pdf", HARBOUR, "application/pdf")},
        data={"session": other_session},
        headers=bearer(token),
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "session_forbidden")
    learner_token = server.token("ines", courses=("harbour", "demo"))
    async with await TutorClient.connect(server.ws_url, learner_token) as tab:
        await tab.send({"type": "open", "session": session})
        await tab.wait_for(lambda f: f["type"] == "session")
        response = await http.post(
            "/courses/harbour/documents",
            files={"file": ("a.pdf", HARBOUR, "application/pdf")},
            data={"session": session},
            headers=bearer(token),
        )
        assert response.status_code == 202, response.text
        frame = await tab.wait_for(
            lambda f: f["type"] == "document.progress" and f["status"] == "ready"
        )
    assert frame["document"] == response.json()["id"]


async def test_unreachable_object_store_answers_503(
    make_settings: Callable[..., Settings],
) -> None:
    """When the S3 endpoint is down, the upload is refused with 503 and nothing is registered."""
    from devtools.cluster import free_port

    settings = make_settings(
        knowledge={
            "embedder": "hashing",
            "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
            "s3_bucket": "docs",
            "aws_access_key_id": "k",
            "aws_secret_access_key": "s",
        }
    )
    async with run_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=60) as http:
            response = await upload(http, "harbour", HARBOUR, instructor(server))
            assert (response.status_code, response.json()["error"]) == (503, "unavailable")
            listing = await http.get(
                "/courses/harbour/documents", headers=bearer(instructor(server))
            )
            assert listing.json()["documents"] == []


async def test_admins_may_use_any_course_and_others_only_theirs(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """An admin uploads anywhere; listing a course outside the token's claim is refused."""
    admin = server.token("ada", role="admin", courses=())
    response = await upload(http, "anything", HARBOUR, admin)
    assert response.status_code == 202
    listing = await http.get("/courses/anything/documents", headers=bearer(admin))
    assert [d["id"] for d in listing.json()["documents"]] == [response.json()["id"]]
    outsider = server.token("lea", courses=("harbour",))
    refused = await http.get("/courses/anything/documents", headers=bearer(outsider))
    assert (refused.status_code, refused.json()["error"]) == (403, "course_forbidden")
    bad = await http.get("/courses/no%20spaces/documents", headers=bearer(admin))
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")


@pytest.mark.postgres
async def test_uploads_kept_in_postgres_reach_the_index(
    make_settings: Callable[..., Settings],
) -> None:
    """With Postgres and no bucket, the PDF is stored in the database, indexed and cited."""
    from tests.support.postgres import temporary_database

    async with temporary_database() as url:
        settings = make_settings(store={"database_url": url}, knowledge={"embedder": "hashing"})
        async with run_server(settings) as server:
            async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
                doc_id = await add(http, server, "harbour", HARBOUR)
                view = await wait_document(http, doc_id, instructor(server))
            assert view["status"] == "ready", view
            token = server.token("lea", courses=("harbour",))
            async with await TutorClient.connect(server.ws_url, token) as learner:
                _, sources = await ask(learner, "Who built the Varnholm lighthouse?", "harbour")
        assert sources[0]["page"] == 2
        assert not (settings.data_dir / "documents").exists()


async def test_most_asked_questions_come_first_in_predictions(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A question five learners asked before is offered, whole, ahead of the course's phrases."""
    doc_id = await add(http, server, "harbour", HARBOUR)
    await wait_document(http, doc_id, instructor(server))
    question = "Who built the Varnholm lighthouse?"
    for user in ("lea", "max", "ola", "pia", "rob"):
        async with await TutorClient.connect(
            server.ws_url, server.token(user, courses=("harbour",))
        ) as learner:
            await ask(learner, question, "harbour")
    token = server.token("noa", courses=("harbour",))
    async with await TutorClient.connect(server.ws_url, token) as learner:
        items: list[str] = []
        for _ in range(100):  # the asked questions are read in the background
            await learner.send({"type": "typing", "course": "harbour", "text": "who built"})
            frame = await learner.wait_for(lambda f: f["type"] == "predictions")
            items = frame["items"]
            if question in items:
                break
            await asyncio.sleep(0.05)
    assert items[0] == question
    assert len(items) <= 5


async def test_a_new_document_warms_the_courses_asked_answers(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """On embedded defaults the pod regenerates asked answers after indexing; the next is cached."""
    first = await add(http, server, "harbour", HARBOUR)
    await wait_document(http, first, instructor(server))
    question = "Who built the Varnholm lighthouse?"
    cached = []
    for user in ("lea", "ola", "pia", "rob", "sam"):  # enough learners for it to be shared
        async with await TutorClient.connect(
            server.ws_url, server.token(user, courses=("harbour",))
        ) as learner:
            before = await learner.answer(await learner.ask(question, course="harbour"))
            cached.append(before.end["cached"])
    assert cached == [False, True, True, True, True]
    rt = server.runtime
    old_version = await rt.retriever.index_version("harbour")
    second = await add(http, server, "harbour", GLACIERS)
    await wait_document(http, second, instructor(server))
    async with asyncio.timeout(30):
        while True:  # warming runs in the background once the document is ready
            version = await rt.retriever.index_version("harbour")
            key = answer_key("harbour", version, "explain", rt.provider.model, question)
            if version != old_version and rt.answers and await rt.answers.get(key):
                break
            await asyncio.sleep(0.05)
    async with await TutorClient.connect(
        server.ws_url, server.token("max", courses=("harbour",))
    ) as learner:
        after = await learner.answer(await learner.ask(question, course="harbour"))
    assert after.end["cached"] is True
    assert "Varnholm" in after.text
