"""``livetutor reindex`` through a real Celery worker, Redis, chromadb server and S3 (moto)."""

from __future__ import annotations

import asyncio

from core.settings import Settings
from devtools.local import WorkerProcess
from knowledge.ingest import Ingest
from tests.support.pdfs import HARBOUR_FACTS, make_pdf
from tests.tasks.conftest import Stack


async def test_reindex_runs_on_the_workers_and_skips_what_is_done(stack: Stack) -> None:
    """A worker with the new embedder re-embeds the course's document; a second run skips it."""
    ingest = Ingest.create(Settings.from_env(stack.settings_env()))
    record, _ = ingest.add_upload(
        "harbour", "guide.pdf", make_pdf(HARBOUR_FACTS, title="Harbour Guide"), user="ines"
    )
    assert ingest.index(record.id) == "ready"

    stack.env |= {"LIVETUTOR_EMBEDDER": "minilm", "LIVETUTOR_HYBRID": "true"}
    worker = WorkerProcess(stack.env, stack.root / "worker-minilm.log")
    await asyncio.to_thread(worker.start)
    assert worker.proc is not None
    stack.workers.append(worker.proc)

    first = await asyncio.to_thread(stack.cli, "reindex", "--course", "harbour")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "re-indexing 1 ready document on the Celery workers"
    assert "harbour / Harbour Guide: ready, 4 chunks" in lines
    assert lines[-1] == "1 re-indexed, 0 already current, 0 failed"
    after = Ingest.create(Settings.from_env(stack.settings_env()))
    assert after.lexical is not None
    for embedder in after.embedders:
        assert after.kb.count_chunks("harbour", embedder.name, record.id) == 4
    vector = after.embedder.embed(["Who built the lighthouse?"])[0]
    hits = after.kb.query("harbour", after.embedder.name, vector, 1)
    assert "Matilda Crane" in hits[0].text

    again = await asyncio.to_thread(stack.cli, "reindex")
    assert again.returncode == 0, again.stderr
    assert "harbour / Harbour Guide: already current" in again.stdout.splitlines()
    assert again.stdout.splitlines()[-1] == "0 re-indexed, 1 already current, 0 failed"
