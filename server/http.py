"""HTTP routes: health probes and the learner's own sessions and messages."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.auth import bearer_from_headers
from core.errors import AuthError, StoreError
from server._http import json_error, principal_of, runtime_of
from store.store import message_view


async def metrics(request: Request) -> Response:
    """Prometheus text format; behind ``LIVETUTOR_METRICS_TOKEN`` when it is set."""
    rt = runtime_of(request)
    expected = rt.settings.metrics_token
    if expected:
        given = bearer_from_headers(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(given, expected):
            return json_error(401, "unauthorized", "metrics need the metrics token")
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def live(request: Request) -> Response:
    """The process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Ready for traffic: store and bus reachable, model loaded, not draining; 503 otherwise."""
    rt = runtime_of(request)
    checks: dict[str, str] = {"draining": "yes" if rt.draining else "no"}
    try:
        await rt.store.ping()
        checks["store"] = "ok"
    except StoreError as exc:
        checks["store"] = f"down: {exc}"
    problem = rt.bus.problem()
    checks["bus"] = f"down: {problem}" if problem else "ok"
    llm = rt.provider.problem()
    checks["llm"] = llm or "ok"
    ok = not rt.draining and all(checks[name] == "ok" for name in ("store", "bus", "llm"))
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "pod": rt.pod, "checks": checks},
        status_code=200 if ok else 503,
    )


async def list_sessions(request: Request) -> Response:
    """The caller's sessions, newest first."""
    try:
        who = principal_of(request)
    except AuthError as exc:
        return json_error(401, "unauthorized", str(exc))
    sessions = await runtime_of(request).store.list_sessions(who.user)
    return JSONResponse(
        {
            "sessions": [
                {
                    "id": s.id,
                    "course": s.course,
                    "title": s.title,
                    "created_at": s.created_at,
                    "updated_at": s.updated_at,
                }
                for s in sessions
            ]
        }
    )


async def session_messages(request: Request) -> Response:
    """A session's messages, for its owner only."""
    try:
        who = principal_of(request)
    except AuthError as exc:
        return json_error(401, "unauthorized", str(exc))
    rt = runtime_of(request)
    session_id = request.path_params["session_id"]
    try:
        limit = min(max(int(request.query_params.get("limit", "200")), 1), 1000)
    except ValueError:
        return json_error(400, "bad_request", "limit must be an integer")
    session = await rt.store.get_session(session_id)
    if session is None:
        return json_error(404, "session_unknown", "no such session")
    if session.user_id != who.user:
        return json_error(403, "session_forbidden", "this session belongs to another user")
    before = request.query_params.get("before") or None
    messages = await rt.store.list_messages(session_id, limit, before)
    return JSONResponse(
        {
            "session": session.id,
            "course": session.course,
            "messages": [message_view(m) for m in messages],
        }
    )
