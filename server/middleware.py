"""ASGI middleware: request ids and HTTP metrics, response headers, request body caps.

``X-Request-ID`` is taken from an HTTP request when it is sane (or
generated), echoed on the response and bound to the log context
(WebSocket log lines carry the connection id instead). HTTP metrics are
labelled by route template (``/sessions/{session_id}/messages``), never by
raw path, so their cardinality stays bounded.

Every answer says ``X-Content-Type-Options: nosniff``, and one that sets no
caching of its own (every JSON answer, errors included) says
``Cache-Control: no-store``; the UI's page and assets keep theirs.

A request body is capped per route before the endpoint reads it: a declared
``Content-Length`` over the cap is answered 413 ``too_large`` without reading
a byte, and a streamed (chunked) body is cut off as soon as it passes the cap.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Sequence

import structlog
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.metrics import Metrics
from server._http import json_error

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}\Z")


class RequestContext:
    """Request id in and out, and ``http_requests_total`` / duration per route."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a WebSocket is handed straight through, so the
        # middleware holds no frame for each of thousands of open connections.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self._observe(scope, receive, send, request_id)

    async def _observe(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.http_requests.labels(method, template, str(status)).inc()
            self.metrics.http_seconds.labels(method, template).observe(
                time.perf_counter() - started
            )


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiHeaders:
    """``nosniff`` on every answer; ``no-store`` on every answer without caching of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        return self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """A streamed request body passed its route's cap while the endpoint read it.

    Raised from ``receive``; an endpoint that catches broad exceptions around
    its reading must let this one through, so that :class:`BodyLimit` answers 413.
    """


class BodyLimit:
    """Request bodies of at most ``max_bytes``, more for the routes and media types in ``larger``.

    ``larger`` holds ``(route, media type, max bytes)``: uploads get their own cap
    only when they are what the route uploads (``multipart/form-data``).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        larger: Sequence[tuple[BaseRoute, str, int]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = tuple(larger)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    def _cap(self, scope: Scope, headers: Headers) -> int:
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        for route, media_type, max_bytes in self.larger:
            if kind == media_type and route.matches(scope)[0] is Match.FULL:
                return max_bytes
        return self.max_bytes

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        cap = self._cap(scope, headers)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _too_large(cap)(scope, receive, send)
            return
        seen = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(cap)(scope, receive, send)


def _too_large(cap: int) -> Response:
    return json_error(413, "too_large", f"request bodies here are limited to {cap} bytes")
