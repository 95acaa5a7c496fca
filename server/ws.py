"""The ``/ws`` endpoint: a thin adapter between Starlette and :class:`Connection`.

The token is checked before the socket is accepted: a missing, expired or
forged token, or an origin outside the allowlist, is refused with HTTP 403
and never reaches the connection code. A draining pod, a pod at
``LIVETUTOR_MAX_CONNECTIONS`` or one whose store is down answers 503.
"""

from __future__ import annotations

import structlog
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from core.auth import bearer_from_headers
from core.errors import AuthError
from realtime.protocol import BEARER_SUBPROTOCOL_PREFIX, SUBPROTOCOL
from server.connection import Connection
from server.runtime import Runtime

log = structlog.get_logger("livetutor.ws")


def _token(ws: WebSocket) -> tuple[str | None, str | None]:
    """The token and the subprotocol to select, from query, header or subprotocol."""
    offered = ws.scope.get("subprotocols") or []
    chosen = SUBPROTOCOL if SUBPROTOCOL in offered else None
    token = ws.query_params.get("token") or bearer_from_headers(ws.headers.get("authorization"))
    for proto in offered:
        if proto.startswith(BEARER_SUBPROTOCOL_PREFIX):
            token = token or proto[len(BEARER_SUBPROTOCOL_PREFIX) :]
            # Browsers fail a handshake that selects none of the offered subprotocols.
            chosen = chosen or proto
    return token, chosen


async def _deny(ws: WebSocket, code: str, message: str) -> None:
    """Refuse the handshake with 503: try another pod."""
    await ws.send_denial_response(JSONResponse({"error": code, "message": message}, 503))


async def ws_endpoint(ws: WebSocket) -> None:
    """Authenticate, accept, and serve one connection."""
    rt: Runtime = ws.app.state.runtime
    origin = ws.headers.get("origin")
    allowed = rt.settings.ws.allowed_origins
    outcomes = rt.metrics.ws_connections
    if allowed and origin is not None and origin not in allowed:
        log.info("ws.refused", reason="origin")
        outcomes.labels("refused_origin").inc()
        await ws.close(code=1008)
        return
    token, subprotocol = _token(ws)
    try:
        who = rt.codec.verify(token or "")
    except AuthError as exc:
        log.info("ws.refused", reason=str(exc))
        outcomes.labels("refused_auth").inc()
        await ws.close(code=1008)
        return
    if rt.draining:
        outcomes.labels("refused_draining").inc()
        await _deny(ws, "draining", "pod restarting")
        return
    if len(rt.connections) >= rt.settings.ws.max_connections:
        outcomes.labels("refused_capacity").inc()
        await _deny(ws, "capacity", "pod at capacity")
        return
    try:
        await rt.store.ensure_user(who.user, who.role)
    except Exception:
        log.exception("ws.store_failed")
        outcomes.labels("refused_unavailable").inc()
        await _deny(ws, "unavailable", "storage unavailable")
        return
    outcomes.labels("accepted").inc()
    await ws.accept(subprotocol=subprotocol)
    conn = Connection(ws, who, rt)
    rt.add_connection(conn)
    with structlog.contextvars.bound_contextvars(connection=conn.id, user=who.user):
        log.info("ws.accepted")
        try:
            await conn.run()
        finally:
            rt.remove_connection(conn)
