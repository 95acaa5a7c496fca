"""Sign-in for the chat UI in embedded mode: a token without a terminal.

``GET /auth/config`` tells the page which sign-in it may offer.
``POST /auth/dev-token`` issues a token for any user name, so it is only on
when :attr:`Settings.dev_signin` says so: by default only on embedded
defaults bound to a loopback interface, never when a shared JWT secret,
database, Redis or origin list is configured. In that default (``auto``) it
answers only a request made on this computer: from a loopback address,
without a proxy's ``Forwarded``, ``X-Forwarded-*`` or ``X-Real-IP`` header
(a proxy on the same host would otherwise hand tokens to anyone who reaches
it), and to a loopback ``Host`` (a DNS-rebinding page cannot use it). In
every mode it refuses bodies that are not JSON (a cross-site form cannot
post one without a preflight) and never issues an ``admin`` token. A real
deployment puts its own identity provider in front and hands the page a
token; see docs/signin.md.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.auth import ROLES, Role
from core.errors import AuthError
from core.ids import is_course_id
from core.settings import LOOPBACK_HOSTS
from server._http import json_error, runtime_of

log = structlog.get_logger("livetutor.signin")
_MAX_COURSES = 20
_MAX_BODY_BYTES = 4096


class DevTokenRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /auth/dev-token``."""

    user: str
    role: str = "learner"
    courses: list[str] = msgspec.field(default_factory=lambda: ["demo"])


def _loopback(host_header: str) -> bool:
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host in LOOPBACK_HOSTS


def _loopback_peer(request: Request) -> bool:
    """Whether the TCP peer is a loopback address (never a name: the socket's own address)."""
    if request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _proxied(request: Request) -> bool:
    """Whether a proxy's forwarding header came with the request."""
    return any(
        name in ("forwarded", "x-real-ip") or name.startswith("x-forwarded-")
        for name in request.headers
    )


def _not_local(request: Request) -> Response | None:
    """The refusal for a request not made on this computer, or None."""
    if _proxied(request):
        return json_error(
            403,
            "dev_signin_remote",
            "development sign-in does not answer through a proxy "
            "(Forwarded, X-Forwarded-* or X-Real-IP header present)",
        )
    if not _loopback_peer(request):
        return json_error(
            403, "dev_signin_remote", "development sign-in answers this computer only"
        )
    if not _loopback(request.headers.get("host", "")):
        return json_error(403, "dev_signin_host", "development sign-in answers on localhost only")
    return None


async def auth_config(request: Request) -> Response:
    """What sign-in the page may offer."""
    settings = runtime_of(request).settings
    return JSONResponse(
        {
            "dev_signin": settings.dev_signin,
            "issuer": settings.auth.jwt_issuer,
            "token_ttl_s": settings.auth.token_ttl_s,
        }
    )


async def dev_token(request: Request) -> Response:
    """Issue a token for the named user, when development sign-in is on."""
    rt = runtime_of(request)
    settings = rt.settings
    if not settings.dev_signin:
        return json_error(
            404,
            "dev_signin_off",
            "development sign-in is off on this server; sign in through your organisation "
            "or paste a token",
        )
    # An operator who turned it on explicitly (a public demo) lets anyone reach it,
    # through a proxy or not; by default it answers this computer only.
    if settings.auth.dev_signin == "auto" and (refused := _not_local(request)) is not None:
        return refused
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return json_error(415, "bad_request", "send the body as application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_BODY_BYTES:
        return json_error(413, "too_large", f"the body is limited to {_MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > _MAX_BODY_BYTES:
        return json_error(413, "too_large", f"the body is limited to {_MAX_BODY_BYTES} bytes")
    try:
        wanted = msgspec.json.decode(body, type=DevTokenRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return json_error(400, "bad_request", f"invalid body: {exc}")
    if wanted.role == "admin":
        return json_error(
            403,
            "role_forbidden",
            "development sign-in never issues admin tokens; an operator prints one with "
            "`livetutor token --role admin`",
        )
    if wanted.role not in ROLES:
        return json_error(400, "bad_request", f"role must be one of {', '.join(ROLES)}")
    courses = sorted(set(wanted.courses))
    if not courses or len(courses) > _MAX_COURSES or not all(is_course_id(c) for c in courses):
        return json_error(400, "bad_request", "courses must be 1-20 course ids")
    role: Role = wanted.role
    try:
        token = rt.codec.issue(
            wanted.user, role=role, courses=courses, ttl_s=settings.auth.token_ttl_s
        )
    except AuthError as exc:
        return json_error(400, "bad_request", str(exc))
    log.info("signin.dev_token", user=wanted.user, role=role)
    body_out: dict[str, Any] = {
        "token": token,
        "user": wanted.user,
        "role": role,
        "courses": courses,
        "expires_in_s": settings.auth.token_ttl_s,
    }
    return JSONResponse(body_out, headers={"cache-control": "no-store"})
