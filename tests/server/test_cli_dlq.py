"""``livetutor dlq`` on embedded defaults: list dead letters and replay one in the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from knowledge.ingest import Ingest
from server.cli import main
from tests.support.files import Route, file_server
from tests.support.pdfs import HARBOUR_FACTS, make_pdf


def test_list_and_replay_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed prefetch is listed; after the fix, replay indexes it and the list is empty."""
    env = {
        "LIVETUTOR_DATA_DIR": str(tmp_path),
        "LIVETUTOR_EMBEDDER": "hashing",
        "LIVETUTOR_FETCH_ALLOWLIST": "localhost",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(env)
    with file_server() as files:
        ingest = Ingest.create(settings)
        record = ingest.add_url("harbour", files.url("/guide.pdf", "localhost"), user="ines")
        try:
            ingest.prefetch(record.id)
        except Exception as exc:
            ingest.dead_letter("prefetch_pdf", record.id, getattr(exc, "reason", str(exc)), 1)
        ingest.kb.close()
        assert main(["dlq", "list"]) == 0
        listed = capsys.readouterr().out
        assert f"prefetch_pdf:{record.id}" in listed and "HTTP 404" in listed
        assert main(["dlq", "replay", "nope"]) == 1
        files.routes["/guide.pdf"] = Route(body=make_pdf(HARBOUR_FACTS))
        assert main(["dlq", "replay", f"prefetch_pdf:{record.id}"]) == 0
        assert "ready" in capsys.readouterr().out
    assert main(["dlq", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no dead letters"
    ingest = Ingest.create(settings)
    document = ingest.kb.get_document(record.id)
    assert document is not None and document.status == "ready" and document.chunks > 0
