"""Document jobs on a real Celery worker process, Redis, chromadb server and S3 (moto)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx

from core.settings import Settings
from knowledge.chunking import chunk_pages
from knowledge.pdf import extract_pages
from realtime.client import TutorClient
from tests.support.documents import ask, bearer, upload, wait_document
from tests.support.files import Route, file_server
from tests.support.pdfs import GLACIER_FACTS, HARBOUR_FACTS, TEXTBOOK, make_pdf
from tests.support.server import RunningServer, run_server
from tests.tasks.conftest import BUCKET, Stack


@asynccontextmanager
async def pod(
    stack: Stack, tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, httpx.AsyncClient]]:
    settings = Settings.from_env(
        stack.settings_env(),
        data_dir=tmp_path / "pod-data",
        pod_name="pod-a",
        llm={"offline_pace_ms": 0, "provider": "offline"},
    )
    async with run_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            yield server, http


def metrics_of(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


async def test_killed_worker_job_runs_again_and_indexes_once(stack: Stack, tmp_path: Path) -> None:
    """The textbook: the worker dies mid-index, a new one finishes; chunks are written once."""
    assert TEXTBOOK.is_file(), f"the shared textbook is missing at {TEXTBOOK}"
    data = TEXTBOOK.read_bytes()
    first, _ = stack.start_worker()
    async with pod(stack, tmp_path) as (server, http):
        token = server.token("ines", role="instructor", courses=("philosophy",))
        async with await TutorClient.connect(server.ws_url, token) as socket:
            response = await upload(http, "philosophy", data, token, name="philosophy.pdf")
            assert response.status_code == 202, response.text
            doc_id = response.json()["id"]
            # Progress from the worker reaches the instructor's connection through Redis.
            frame = await socket.wait_for(
                lambda f: f["type"] == "document.progress" and f["progress"] >= 0.3, timeout_s=90
            )
            assert (frame["document"], frame["status"]) == (doc_id, "indexing")
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            view = (await http.get(f"/documents/{doc_id}", headers=bearer(token))).json()
            assert view["status"] == "indexing" and view["progress"] < 1.0
            _, metrics_port = stack.start_worker()
            view = await wait_document(http, doc_id, token, timeout_s=120)
            await socket.wait_for(
                lambda f: f["type"] == "document.progress" and f["status"] == "ready", timeout_s=10
            )
        assert view["status"] == "ready", view
        assert view["pages"] == 385
        expected = chunk_pages(
            extract_pages(
                data, max_pages=2000, max_text_bytes=20_000_000, timeout_s=60, memory_bytes=0
            ).pages,
            words=180,
            overlap=40,
        )
        kb = server.runtime.courses.ingest.kb
        embedder = server.runtime.courses.ingest.embedder.name
        assert view["chunks"] == len(expected)
        assert kb.count_chunks("philosophy", embedder, doc_id) == len(expected)
        assert kb.count_chunks("philosophy", embedder) == len(expected)
        # The file went to the object store, where any worker can read it.
        s3 = boto3.client(
            "s3",
            endpoint_url=stack.env["S3_ENDPOINT_URL"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        # Other tests' documents may share the bucket: this document's file is there once.
        assert len([k for k in keys if k.endswith(f"/{doc_id}.pdf")]) == 1
        learner = server.token("lea", courses=("philosophy",))
        async with await TutorClient.connect(server.ws_url, learner) as client:
            _, sources = await ask(
                client, "What is the selective attention test about?", "philosophy"
            )
        assert 41 in [s["page"] for s in sources]
        assert all(s["document_id"] == doc_id for s in sources)
        text = metrics_of(metrics_port)
        assert 'celery_task_duration_seconds_count{outcome="ok",task="index_document"} 1.0' in text


async def test_dead_letter_is_listed_and_replayed(stack: Stack, tmp_path: Path) -> None:
    """A prefetch that fails for good is a dead letter; after the fix, replay indexes it."""
    _, metrics_port = stack.start_worker()
    with file_server() as files:
        url = files.url("/later.pdf", "localhost")
        async with pod(stack, tmp_path) as (server, http):
            token = server.token("ines", role="instructor", courses=("harbour",))
            response = await http.post(
                "/courses/harbour/documents", json={"url": url}, headers=bearer(token)
            )
            assert response.status_code == 202, response.text
            doc_id = response.json()["id"]
            view = await wait_document(http, doc_id, token)
            assert (view["status"], view["reason"]) == ("failed", "the server answered HTTP 404")
            listing = await asyncio.to_thread(stack.cli, "dlq", "list")
            assert listing.returncode == 0, listing.stderr
            assert f"prefetch_pdf:{doc_id}" in listing.stdout
            assert "HTTP 404" in listing.stdout
            text = metrics_of(metrics_port)
            assert 'celery_task_failures_total{kind="rejected",task="prefetch_pdf"} 1.0' in text
            assert "celery_dead_letters 1.0" in text

            files.routes["/later.pdf"] = Route(body=make_pdf(HARBOUR_FACTS, title="Harbour"))
            replay = await asyncio.to_thread(stack.cli, "dlq", "replay", f"prefetch_pdf:{doc_id}")
            assert replay.returncode == 0, replay.stderr
            view = await wait_document(http, doc_id, token)
            assert view["status"] == "ready", view
            assert "reason" not in view
            learner = server.token("lea", courses=("harbour",))
            async with await TutorClient.connect(server.ws_url, learner) as client:
                _, sources = await ask(client, "Who built the Varnholm lighthouse?", "harbour")
            assert sources[0]["page"] == 2 and sources[0]["document_id"] == doc_id
            empty = await asyncio.to_thread(stack.cli, "dlq", "list")
            assert empty.stdout.strip() == "no dead letters"
            assert "celery_dead_letters 0.0" in metrics_of(metrics_port)


async def test_ssrf_url_fails_without_retry(stack: Stack, tmp_path: Path) -> None:
    """A URL to the metadata address is refused once, with the reason, and never retried."""
    _, metrics_port = stack.start_worker()
    async with pod(stack, tmp_path) as (server, http):
        token = server.token("ines", role="instructor", courses=("harbour",))
        results: list[dict[str, Any]] = []
        for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/x.pdf"):
            response = await http.post(
                "/courses/harbour/documents", json={"url": url}, headers=bearer(token)
            )
            results.append(await wait_document(http, response.json()["id"], token))
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert "cloud metadata" in results[0]["reason"]
    assert "loopback" in results[1]["reason"]
    text = metrics_of(metrics_port)
    assert 'celery_task_retries_total{task="prefetch_pdf"}' not in text


async def test_stopping_worker_hands_its_job_back_at_once(stack: Stack, tmp_path: Path) -> None:
    """SIGTERM mid-index: the worker exits promptly and the next worker finishes the job."""
    # Long enough that only a job handed back (not one lost and redelivered) passes.
    stack.env["LIVETUTOR_TASK_VISIBILITY_TIMEOUT_S"] = "600"
    data = TEXTBOOK.read_bytes()
    first, _ = stack.start_worker()
    async with pod(stack, tmp_path) as (server, http):
        token = server.token("ines", role="instructor", courses=("philosophy",))
        async with await TutorClient.connect(server.ws_url, token) as socket:
            response = await upload(http, "philosophy", data, token, name="philosophy.pdf")
            doc_id = response.json()["id"]
            await socket.wait_for(
                lambda f: f["type"] == "document.progress" and f["progress"] >= 0.2, timeout_s=90
            )
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.to_thread(first.wait), timeout=20)
        view = (await http.get(f"/documents/{doc_id}", headers=bearer(token))).json()
        assert view["status"] == "indexing"
        started = asyncio.get_running_loop().time()
        stack.start_worker()
        view = await wait_document(http, doc_id, token, timeout_s=60)
        assert view["status"] == "ready"
        assert asyncio.get_running_loop().time() - started < 60
        kb = server.runtime.courses.ingest.kb
        embedder = server.runtime.courses.ingest.embedder.name
        assert kb.count_chunks("philosophy", embedder, doc_id) == view["chunks"]


async def test_indexing_a_document_warms_the_courses_asked_answers(
    stack: Stack, tmp_path: Path
) -> None:
    """After a re-index the worker regenerates the most asked answers: the next ask is cached."""
    # One learner's question counts as asked by many here (the default waits for five).
    stack.env["LIVETUTOR_POPULAR_MIN_LEARNERS"] = "1"
    _, metrics_port = stack.start_worker()
    question = "Who built the Varnholm lighthouse?"
    warmed = 'celery_task_duration_seconds_count{outcome="ok",task="regenerate_cache"} 2.0'
    async with pod(stack, tmp_path) as (server, http):
        token = server.token("ines", role="instructor", courses=("harbour",))
        first = await upload(http, "harbour", make_pdf(HARBOUR_FACTS, title="Harbour"), token)
        assert (await wait_document(http, first.json()["id"], token))["status"] == "ready"
        lea = server.token("lea", courses=("harbour",))
        async with await TutorClient.connect(server.ws_url, lea) as client:
            before = await client.answer(await client.ask(question, course="harbour"))
        assert before.end["cached"] is False
        # A second document changes the course: its cached answers retire, then are warmed.
        ice = make_pdf(GLACIER_FACTS, title="Glaciers")
        second = await upload(http, "harbour", ice, token, name="ice.pdf")
        assert (await wait_document(http, second.json()["id"], token))["status"] == "ready"
        async with asyncio.timeout(60):
            while warmed not in await asyncio.to_thread(metrics_of, metrics_port):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        max_ = server.token("max", courses=("harbour",))
        async with await TutorClient.connect(server.ws_url, max_) as client:
            after = await client.answer(await client.ask(question, course="harbour"))
    assert after.end["cached"] is True
    assert "Varnholm" in after.text
    assert after.sources[0]["document_id"] == first.json()["id"]
