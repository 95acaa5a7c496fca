"""The data directory and everything the server writes in it are private to its user."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import httpx

from core.settings import Settings
from realtime.client import TutorClient
from tests.support.documents import ask, upload, wait_document
from tests.support.pdfs import HARBOUR_FACTS, make_pdf
from tests.support.server import run_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _open_to_others(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) that its group or others may use."""
    paths = [root, *root.rglob("*")]
    return [f"{p.relative_to(root.parent)} {_mode(p):o}" for p in paths if _mode(p) & 0o077]


async def test_a_fresh_data_dir_and_everything_in_it_are_private(
    make_settings: Callable[..., Settings],
) -> None:
    """After a question and an upload, no file or directory in the data dir is open to others."""
    settings = make_settings(auth={"jwt_secret": ""}, knowledge={"embedder": "hashing"})
    data_dir = settings.data_dir
    assert not data_dir.exists()
    async with run_server(settings) as server:
        async with await TutorClient.connect(server.ws_url, server.token("lea")) as learner:
            await ask(learner, "What is a premise?", "demo")
        instructor = server.token("ines", role="instructor", courses=("harbour",))
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            response = await upload(http, "harbour", make_pdf(HARBOUR_FACTS), instructor)
            assert response.status_code == 202, response.text
            view = await wait_document(http, response.json()["id"], instructor)
        assert view["status"] == "ready"
    names = {p.name for p in data_dir.iterdir()}
    assert {"livetutor.sqlite3", "chroma", "documents"} <= names
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "livetutor.sqlite3") == 0o600
    assert _open_to_others(data_dir) == []


async def test_an_existing_open_data_dir_is_tightened(
    make_settings: Callable[..., Settings],
) -> None:
    """A data directory left 0755 by an earlier version is 0700 once the server starts."""
    settings = make_settings(knowledge={"embedder": "hashing"})
    settings.data_dir.mkdir()
    settings.data_dir.chmod(0o755)
    async with run_server(settings):
        assert _mode(settings.data_dir) == 0o700


async def test_an_existing_open_database_is_tightened_with_its_wal_and_shm(
    make_settings: Callable[..., Settings],
) -> None:
    """A conversation database left 0644 is 0600 once the server opens it, and so are -wal, -shm."""
    settings = make_settings(knowledge={"embedder": "hashing"})
    settings.data_dir.mkdir(mode=0o700)
    database = settings.data_dir / "livetutor.sqlite3"
    database.touch()
    database.chmod(0o644)
    async with run_server(settings) as server:
        async with await TutorClient.connect(server.ws_url, server.token("lea")) as learner:
            await ask(learner, "What is a premise?", "demo")
        files = sorted(settings.data_dir.glob("livetutor.sqlite3*"))
        assert [p.name for p in files] == [
            "livetutor.sqlite3",
            "livetutor.sqlite3-shm",
            "livetutor.sqlite3-wal",
        ]
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
