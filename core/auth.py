"""JWT issuing and checking.

Tokens are HS256 JWTs with ``sub`` (user id), ``role`` (learner, instructor
or admin), ``courses`` (course ids the user may use; admins may use any),
``iss``, ``iat`` and ``exp``. The embedded default keeps its secret in the
data directory, created on first start with mode 0600.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import jwt

from core.errors import AuthError
from core.ids import is_course_id, is_user_id
from core.settings import Settings

Role = Literal["learner", "instructor", "admin"]
ROLES: tuple[Role, ...] = ("learner", "instructor", "admin")
SECRET_FILE = "jwt_secret"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a verified token."""

    user: str
    role: Role
    courses: frozenset[str]

    def may_use(self, course: str) -> bool:
        """Admins may use every course; others those in their ``courses`` claim."""
        return self.role == "admin" or course in self.courses


def load_secret(settings: Settings) -> str:
    """The signing secret: the setting if given, else the data directory's file (created once)."""
    if settings.auth.jwt_secret:
        if len(settings.auth.jwt_secret) < 32:
            raise AuthError("LIVETUTOR_JWT_SECRET must be at least 32 characters")
        return settings.auth.jwt_secret
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        try:
            # link() fails if the file exists: the secret appears whole or not at all,
            # and two processes starting together agree on the first one written.
            os.link(staged, path)
        except FileExistsError:
            pass
        finally:
            staged.unlink()
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise AuthError(f"the secret in {SECRET_FILE} is empty or too short; delete the file")
    return secret


class TokenCodec:
    """Signs and verifies LiveTutor tokens with one secret."""

    def __init__(self, secret: str, issuer: str) -> None:
        self._secret = secret
        self._issuer = issuer

    def issue(
        self,
        user: str,
        *,
        role: Role = "learner",
        courses: list[str] | tuple[str, ...] = (),
        ttl_s: int = 86_400,
    ) -> str:
        """A signed token for ``user``."""
        if not is_user_id(user):
            raise AuthError("user id must be 1-64 characters of letters, digits and _.@:-")
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}")
        if not all(is_course_id(c) for c in courses):
            raise AuthError("course ids must be 1-64 characters of letters, digits and _.:-")
        now = int(time.time())
        claims = {
            "sub": user,
            "role": role,
            "courses": sorted(set(courses)),
            "iss": self._issuer,
            "iat": now,
            "exp": now + ttl_s,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`AuthError` otherwise."""
        if not token:
            raise AuthError("missing token")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self._issuer,
                options={"require": ["sub", "exp", "iat", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {type(exc).__name__}") from None
        user, role, courses = (
            claims.get("sub"),
            claims.get("role", "learner"),
            claims.get("courses"),
        )
        if not isinstance(user, str) or not is_user_id(user):
            raise AuthError("invalid token: bad subject")
        if role not in ROLES:
            raise AuthError("invalid token: bad role")
        if courses is None:
            courses = []
        if not isinstance(courses, list) or not all(
            isinstance(c, str) and is_course_id(c) for c in courses
        ):
            raise AuthError("invalid token: bad courses claim")
        return Principal(user=user, role=cast(Role, role), courses=frozenset(courses))


def bearer_from_headers(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
