"""The ``/ws`` endpoint: a thin adapter between Starlette and :class:`Connection`.

The token is checked before the socket is accepted: a missing, expired or
forged token, or an origin outside the allowlist, is refused with HTTP 403
and never reaches the connection code. A ``bearer.<jwt>`` subprotocol
offered without ``livetutor.v1`` is refused with 400: the server selects
only ``livetutor.v1``, so the token is never echoed back in the response. A
user who already holds ``LIVETUTOR_MAX_CONNECTIONS_PER_USER`` connections
(on every pod) is refused with 429; the slot is freed as soon as a
connection closes. A draining pod, a pod at ``LIVETUTOR_MAX_CONNECTIONS`` or
one whose store is down answers 503.
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from core.auth import bearer_from_headers
from core.errors import AuthError
from realtime.protocol import BEARER_SUBPROTOCOL_PREFIX, SUBPROTOCOL
from server.connection import Connection
from server.runtime import Runtime

log = structlog.get_logger("livetutor.ws")


def _offered(ws: WebSocket) -> list[str]:
    """The subprotocols the client offered."""
    return list(ws.scope.get("subprotocols") or [])


def _token(ws: WebSocket) -> str | None:
    """The token, from the query, the ``Authorization`` header or a ``bearer.`` subprotocol."""
    token = ws.query_params.get("token") or bearer_from_headers(ws.headers.get("authorization"))
    for proto in _offered(ws):
        if proto.startswith(BEARER_SUBPROTOCOL_PREFIX):
            token = token or proto[len(BEARER_SUBPROTOCOL_PREFIX) :]
    return token


async def _deny(ws: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the handshake with an HTTP status and a JSON reason."""
    await ws.send_denial_response(JSONResponse({"error": code, "message": message}, status))


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
    offered = _offered(ws)
    # Never the bearer subprotocol: selecting it would echo the token in the response.
    subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
    if subprotocol is None and any(p.startswith(BEARER_SUBPROTOCOL_PREFIX) for p in offered):
        log.info("ws.refused", reason="subprotocol")
        outcomes.labels("refused_subprotocol").inc()
        await _deny(
            ws,
            400,
            "subprotocol_required",
            f"offer the {SUBPROTOCOL} subprotocol beside {BEARER_SUBPROTOCOL_PREFIX}<token>",
        )
        return
    try:
        who = rt.codec.verify(_token(ws) or "")
    except AuthError as exc:
        log.info("ws.refused", reason=str(exc))
        outcomes.labels("refused_auth").inc()
        await ws.close(code=1008)
        return
    if rt.draining:
        outcomes.labels("refused_draining").inc()
        await _deny(ws, 503, "draining", "pod restarting")
        return
    if len(rt.connections) >= rt.settings.ws.max_connections:
        outcomes.labels("refused_capacity").inc()
        await _deny(ws, 503, "capacity", "pod at capacity")
        return
    conn = Connection(ws, who, rt)
    if not await rt.connection_limits.claim(who.user, conn.id):
        log.info("ws.refused", reason="user_connections", user=who.user)
        outcomes.labels("refused_user_connections").inc()
        cap = rt.settings.ws.max_connections_per_user
        await _deny(
            ws,
            429,
            "too_many_connections",
            f"this user already has {cap} connections open; close one first",
        )
        return
    try:
        await _serve(ws, rt, conn, subprotocol)
    finally:
        try:
            # Shielded: a handler cancelled at shutdown still frees the slot.
            await asyncio.shield(rt.connection_limits.release(who.user, conn.id))
        finally:
            # Forgotten only once its slot is free: a pod without connections holds no slot.
            rt.remove_connection(conn)


async def _serve(ws: WebSocket, rt: Runtime, conn: Connection, subprotocol: str | None) -> None:
    """Accept and run a connection that holds its user's slot."""
    who = conn.who
    try:
        await rt.store.ensure_user(who.user, who.role)
    except Exception:
        log.exception("ws.store_failed")
        rt.metrics.ws_connections.labels("refused_unavailable").inc()
        await _deny(ws, 503, "unavailable", "storage unavailable")
        return
    rt.metrics.ws_connections.labels("accepted").inc()
    await ws.accept(subprotocol=subprotocol)
    rt.add_connection(conn)
    with structlog.contextvars.bound_contextvars(connection=conn.id, user=who.user):
        log.info("ws.accepted")
        await conn.run()
