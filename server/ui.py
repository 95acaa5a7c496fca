"""The chat UI: the built single-page app (``frontend/dist``) served at ``/``.

``index.html`` is read on each request (so a rebuild shows without a restart)
and sent with ``Cache-Control: no-cache`` and a Content Security Policy; the
hashed files under ``/assets/`` are immutable. When the build is missing,
``/`` says how to build it and the server keeps serving everything else.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from core.settings import Settings

SOURCE_DIST = Path(__file__).resolve().parent.parent / "frontend" / "dist"

# Scripts, styles and sockets from this origin only; no inline script, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

NOT_BUILT = """LiveTutor is running, but its chat UI is not built.

Build it (needs Node.js 20 and npm):
    make ui                  (or: cd frontend && npm ci && npm run build)
then reload this page. `make run` builds it automatically when npm is installed.
Looked for: {index}

Meanwhile the server works without it:
WebSocket: /ws?token=<jwt>  (protocol v1, see docs/protocol.md)
Token:     livetutor token --user alice
Client:    livetutor ask --token <jwt> "What makes an argument valid?"
Health:    /health/live  /health/ready
"""


def ui_dir(settings: Settings) -> Path:
    """Where the built UI lives: ``LIVETUTOR_UI_DIR`` or ``frontend/dist`` in the source tree."""
    return Path(settings.ui_dir) if settings.ui_dir else SOURCE_DIST


class UI:
    """``GET /`` and ``/assets/…`` from one build directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.assets = _Assets(directory=directory / "assets", check_dir=False)

    async def index(self, request: Request) -> Response:
        """The app's page, or how to build it."""
        index = self.directory / "index.html"
        if not index.is_file():
            return PlainTextResponse(NOT_BUILT.format(index=index), status_code=503)
        return FileResponse(index, headers=_HEADERS, media_type="text/html")


class _Assets(StaticFiles):
    """Hashed build files: cacheable for a year, a plain 404 when missing."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            # A 304 carries them too: its headers replace the cached copy's.
            if message["type"] == "http.response.start" and message.get("status") in (200, 304):
                headers = list(message.get("headers", []))
                headers.append((b"cache-control", b"public, max-age=31536000, immutable"))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_cached)
