"""``livetutor reindex`` on embedded defaults: the jobs run in the command itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.settings import Settings
from knowledge.ingest import Ingest
from tests.support.pdfs import GLACIER_FACTS, HARBOUR_FACTS, make_pdf

BIN = Path(sys.executable).parent


def livetutor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "livetutor"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_reindex_after_an_embedder_change(tmp_path: Path) -> None:
    """Each course moves to the new embedder once; a rerun skips what is done; typos are named."""
    hashing = {
        "LIVETUTOR_DATA_DIR": str(tmp_path),
        "LIVETUTOR_EMBEDDER": "hashing",
        "LIVETUTOR_HYBRID": "false",
        "LIVETUTOR_LOG_JSON": "false",
    }
    minilm = {**hashing, "LIVETUTOR_EMBEDDER": "minilm"}
    ingest = Ingest.create(Settings.from_env(hashing))
    for course, facts in (("harbour", HARBOUR_FACTS), ("glaciers", GLACIER_FACTS)):
        record, _ = ingest.add_upload(
            course, "f.pdf", make_pdf(facts, title=course.title()), user="i"
        )
        assert ingest.index(record.id) == "ready"
    ingest.kb.close()

    typo = livetutor(minilm, "reindex", "--course", "harbor")
    assert typo.returncode == 2
    assert "no course 'harbor'" in typo.stderr and "glaciers, harbour" in typo.stderr

    one = livetutor(minilm, "reindex", "--course", "harbour")
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert lines[0] == "re-indexing 1 ready document in this process"
    assert "harbour / Harbour: ready, 4 chunks" in lines
    assert lines[-1] == "1 re-indexed, 0 already current, 0 failed"

    every = livetutor(minilm, "reindex")
    assert every.returncode == 0, every.stderr
    lines = every.stdout.splitlines()
    assert "harbour / Harbour: already current" in lines
    assert "glaciers / Glaciers: ready, 3 chunks" in lines
    assert lines[-1] == "1 re-indexed, 1 already current, 0 failed"

    after = Ingest.create(Settings.from_env(minilm))
    try:
        vector = after.embedder.embed(["Who built the lighthouse?"])[0]
        hits = after.kb.query("harbour", after.embedder.name, vector, 1)
        assert hits and "Matilda Crane" in hits[0].text
        assert [d.status for d in after.kb.documents("glaciers")] == ["ready"]
    finally:
        after.kb.close()
