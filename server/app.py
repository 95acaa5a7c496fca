"""The Starlette application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from server import documents, http
from server.errors import StoreError
from server.middleware import RequestContext
from server.runtime import Runtime
from server.settings import Settings
from server.ws import ws_endpoint

_INDEX = """LiveTutor is running.

WebSocket: /ws?token=<jwt>  (protocol v1, see docs/protocol.md)
Token:     livetutor token --user alice
Client:    livetutor ask --token <jwt> "What makes an argument valid?"
Health:    /health/live  /health/ready
Documents: POST /courses/<course>/documents  GET /documents/<id>
Metrics:   /metrics
"""


async def _index(request: Request) -> Response:
    return PlainTextResponse(_INDEX)


async def _store_down(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": "unavailable", "message": "storage is unavailable; try again"}, status_code=503
    )


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    """The app; ``runtime`` lets tests hand in one with replaced parts."""
    rt = runtime or Runtime(settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        app.state.runtime = rt
        try:
            yield
        finally:
            await rt.stop()

    return Starlette(
        routes=[
            Route("/", _index),
            Route("/health/live", http.live),
            Route("/health/ready", http.ready),
            Route("/metrics", http.metrics),
            Route("/sessions", http.list_sessions),
            Route("/sessions/{session_id}/messages", http.session_messages),
            Route("/courses/{course}/documents", documents.add_document, methods=["POST"]),
            Route("/courses/{course}/documents", documents.list_documents, methods=["GET"]),
            Route("/documents/{doc_id}", documents.get_document, methods=["GET"]),
            Route("/documents/{doc_id}", documents.delete_document, methods=["DELETE"]),
            WebSocketRoute("/ws", ws_endpoint),
        ],
        exception_handlers={StoreError: _store_down},
        middleware=[Middleware(RequestContext, metrics=rt.metrics)],
        lifespan=lifespan,
    )
