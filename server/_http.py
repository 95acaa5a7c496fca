"""What every HTTP route needs: the pod's runtime, the caller, and the JSON error shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from core.auth import Principal, bearer_from_headers
from server.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The pod's :class:`~server.runtime.Runtime`, opened in the lifespan."""
    rt: Runtime = request.app.state.runtime
    return rt


def json_error(status: int, code: str, message: str) -> JSONResponse:
    """The documented error body: ``{"error": code, "message": message}``."""
    return JSONResponse({"error": code, "message": message}, status_code=status)


def principal_of(request: Request) -> Principal:
    """The caller named by ``Authorization: Bearer``; raises ``AuthError`` when it is not valid."""
    token = bearer_from_headers(request.headers.get("authorization"))
    return runtime_of(request).codec.verify(token or "")
