"""The built chat UI served at ``/``, and the message when it is not built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from core.settings import Settings
from server.ui import CSP, SOURCE_DIST, ui_dir
from tests.support.server import run_server


def build(root: Path) -> Path:
    """A stand-in build: index.html and one hashed asset."""
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text('<!doctype html><script src="/assets/app-1a2b.js"></script>')
    (root / "assets" / "app-1a2b.js").write_text("console.log('hi')")
    return root


async def test_index_and_assets_are_served(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """/ serves index.html with a CSP and no-cache; assets are immutable; a missing asset is 404."""
    dist = build(tmp_path / "dist")
    async with run_server(make_settings(ui_dir=str(dist))) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            index = await http.get("/")
            asset = await http.get("/assets/app-1a2b.js")
            missing = await http.get("/assets/nope.js")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert index.headers["content-security-policy"] == CSP
    assert index.headers["cache-control"] == "no-cache"
    assert "/assets/app-1a2b.js" in index.text
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    assert missing.status_code == 404


async def test_missing_build_says_how_to_build(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Without a build, / answers 503 with the command that builds it; the API still works."""
    async with run_server(make_settings(ui_dir=str(tmp_path / "nothing"))) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            index = await http.get("/")
            health = await http.get("/health/live")
    assert index.status_code == 503
    assert "make ui" in index.text
    assert "npm ci && npm run build" in index.text
    assert health.status_code == 200


def test_default_build_dir_is_the_source_tree() -> None:
    """An empty LIVETUTOR_UI_DIR means frontend/dist next to the server package."""
    assert ui_dir(Settings.from_env({})) == SOURCE_DIST
    assert SOURCE_DIST.parts[-2:] == ("frontend", "dist")
    assert ui_dir(Settings.from_env({"LIVETUTOR_UI_DIR": "/srv/ui"})) == Path("/srv/ui")
