"""The Starlette application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute

from core.errors import StoreError
from core.settings import Settings
from server import documents, http, problems, questions, signin
from server.middleware import ApiHeaders, BodyLimit, RequestContext
from server.runtime import Runtime
from server.ui import UI, ui_dir
from server.ws import ws_endpoint

# The largest request body of every route but uploads (JSON bodies are a few KiB).
MAX_BODY_BYTES = 65_536


async def _store_down(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": "unavailable", "message": "storage is unavailable; try again"}, status_code=503
    )


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    """The app; ``runtime`` lets tests hand in one with replaced parts."""
    rt = runtime or Runtime(settings or Settings.from_env())
    ui = UI(ui_dir(rt.settings))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        app.state.runtime = rt
        try:
            yield
        finally:
            await rt.stop()

    upload = Route("/courses/{course}/documents", documents.add_document, methods=["POST"])
    upload_bytes = documents.upload_body_bytes(rt.settings.knowledge.max_upload_bytes)
    return Starlette(
        routes=[
            Route("/", ui.index),
            Mount("/assets", app=ui.assets, name="assets"),
            Route("/auth/config", signin.auth_config),
            Route("/auth/dev-token", signin.dev_token, methods=["POST"]),
            Route("/health/live", http.live),
            Route("/health/ready", http.ready),
            Route("/sessions", http.list_sessions),
            Route("/sessions/{session_id}/messages", http.session_messages),
            upload,
            Route("/courses/{course}/documents", documents.list_documents, methods=["GET"]),
            Route("/documents/{doc_id}", documents.get_document, methods=["GET"]),
            Route("/documents/{doc_id}/file", documents.document_file, methods=["GET"]),
            Route("/documents/{doc_id}", documents.delete_document, methods=["DELETE"]),
            Route("/courses/{course}/questions", questions.list_questions, methods=["GET"]),
            Route("/courses/{course}/questions", questions.remove_question, methods=["DELETE"]),
            Route("/courses/{course}/problems", problems.list_problems, methods=["GET"]),
            Route("/courses/{course}/problems/{problem_id}", problems.put_problem, methods=["PUT"]),
            Route("/courses/{course}/problems/{problem_id}", problems.get_problem, methods=["GET"]),
            Route(
                "/courses/{course}/problems/{problem_id}",
                problems.delete_problem,
                methods=["DELETE"],
            ),
            Route("/courses/{course}/policy", problems.put_policy, methods=["PUT"]),
            Route("/courses/{course}/policy", problems.get_policy, methods=["GET"]),
            WebSocketRoute("/ws", ws_endpoint),
        ],
        exception_handlers={StoreError: _store_down},
        middleware=[
            Middleware(RequestContext, metrics=rt.metrics),
            Middleware(ApiHeaders),
            Middleware(
                BodyLimit,
                max_bytes=MAX_BODY_BYTES,
                larger=[(upload, "multipart/form-data", upload_bytes)],
            ),
        ],
        lifespan=lifespan,
    )


def create_metrics_app(runtime: Runtime) -> Starlette:
    """``GET /metrics`` alone, for the metrics listener (``LIVETUTOR_METRICS_PORT``).

    The main app does not serve it: metrics stay off the port that learners and
    the public proxy reach. The runtime is the main app's, opened by its lifespan.
    """
    app = Starlette(routes=[Route("/metrics", http.metrics)], middleware=[Middleware(ApiHeaders)])
    app.state.runtime = runtime
    return app
