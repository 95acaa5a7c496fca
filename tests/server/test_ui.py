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


async def test_revalidated_assets_stay_cacheable(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A 304 for an asset keeps the year-long caching, never the API's no-store."""
    dist = build(tmp_path / "dist")
    async with run_server(make_settings(ui_dir=str(dist))) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            asset = await http.get("/assets/app-1a2b.js")
            again = await http.get(
                "/assets/app-1a2b.js", headers={"if-none-match": asset.headers["etag"]}
            )
    assert again.status_code == 304
    assert again.headers.get_list("cache-control") == ["public, max-age=31536000, immutable"]


async def test_page_may_open_sockets_to_its_own_origin_only(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The page's CSP lets it connect to its own origin, not to ws: or wss: of any host."""
    dist = build(tmp_path / "dist")
    async with run_server(make_settings(ui_dir=str(dist))) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            index = await http.get("/")
    directives = dict(
        d.strip().split(" ", 1) for d in index.headers["content-security-policy"].split(";")
    )
    assert directives["connect-src"] == "'self'"


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
