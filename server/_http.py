"""What every HTTP route needs: the pod's runtime, the caller, and the JSON error shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from core.auth import Principal, bearer_from_headers
from core.errors import AuthError
from core.ids import is_course_id
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


class Refused(Exception):
    """A request a route refuses: raised anywhere in it, answered with :attr:`response`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = json_error(status, code, message)


def caller(request: Request) -> Principal:
    """Who sent the request; :class:`Refused` 401 without a valid token."""
    try:
        return principal_of(request)
    except AuthError as exc:
        raise Refused(401, "unauthorized", str(exc)) from None


def course_param(request: Request) -> str:
    """The ``{course}`` of the path; :class:`Refused` 400 when it is not a course id."""
    course = str(request.path_params["course"])
    if not is_course_id(course):
        raise Refused(400, "bad_request", "course ids are 1-64 letters, digits and _.:-")
    return course
