"""JWT issuing and checking, the signing secret, and bearer headers."""

from __future__ import annotations

import base64
import json
import stat
import string
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.auth import SECRET_FILE, Principal, TokenCodec, bearer_from_headers, load_secret
from core.errors import AuthError
from core.settings import Settings

SECRET = "unit-test-secret-" + "k" * 32
ISSUER = "livetutor"


@pytest.fixture
def codec() -> TokenCodec:
    return TokenCodec(SECRET, ISSUER)


def signed(claims: dict[str, Any], secret: str = SECRET) -> str:
    """A token with exactly ``claims`` (plus iss/iat/exp unless given), HS256-signed."""
    now = int(time.time())
    full = {"iss": ISSUER, "iat": now, "exp": now + 60, **claims}
    return jwt.encode(full, secret, algorithm="HS256")


def settings_in(tmp_path: Path, **auth: Any) -> Settings:
    """Settings with the data directory under ``tmp_path``."""
    return Settings.from_env({}, data_dir=tmp_path / "data", auth=auth)


# -- issue and verify ---------------------------------------------------------


def test_issue_verify_round_trip(codec: TokenCodec) -> None:
    """A token issued for a user verifies to the same user, role and courses."""
    token = codec.issue("alice@example", role="instructor", courses=["logic", "demo", "demo"])
    assert codec.verify(token) == Principal(
        user="alice@example", role="instructor", courses=frozenset({"demo", "logic"})
    )


def test_issue_defaults_to_learner_without_courses(codec: TokenCodec) -> None:
    """Without role and courses the token is a learner's with no courses."""
    principal = codec.verify(codec.issue("bob"))
    assert principal.role == "learner"
    assert principal.courses == frozenset()


def test_expired_token_is_refused(codec: TokenCodec) -> None:
    """A token past its exp is refused as expired."""
    token = codec.issue("alice", ttl_s=-10)
    with pytest.raises(AuthError, match="expired"):
        codec.verify(token)


def test_wrong_secret_is_refused(codec: TokenCodec) -> None:
    """A token signed with another secret is refused."""
    token = TokenCodec("another-secret-" + "z" * 32, ISSUER).issue("alice")
    with pytest.raises(AuthError):
        codec.verify(token)


def test_wrong_issuer_is_refused(codec: TokenCodec) -> None:
    """A token from another issuer is refused even with the right secret."""
    token = TokenCodec(SECRET, "someone-else").issue("alice")
    with pytest.raises(AuthError):
        codec.verify(token)


def test_tampered_payload_is_refused(codec: TokenCodec) -> None:
    """Changing the payload (here: learner to admin) breaks the signature."""
    header, payload, signature = codec.issue("alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(AuthError):
        codec.verify(f"{header}.{forged}.{signature}")


def test_alg_none_is_refused(codec: TokenCodec) -> None:
    """An unsigned token (alg none) is refused."""
    now = int(time.time())
    claims = {"sub": "alice", "role": "admin", "iss": ISSUER, "iat": now, "exp": now + 60}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(AuthError):
        codec.verify(token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_malformed_token_is_refused(codec: TokenCodec, token: str) -> None:
    """Empty or malformed tokens raise AuthError."""
    with pytest.raises(AuthError):
        codec.verify(token)


@pytest.mark.parametrize("role", ["root", "", 3, None])
def test_bad_role_claim_is_refused(codec: TokenCodec, role: Any) -> None:
    """A validly signed token with an unknown role is refused."""
    with pytest.raises(AuthError, match="role"):
        codec.verify(signed({"sub": "alice", "role": role}))


def test_missing_role_means_learner(codec: TokenCodec) -> None:
    """A token without a role claim is a learner's."""
    assert codec.verify(signed({"sub": "alice"})).role == "learner"


@pytest.mark.parametrize("courses", ["demo", {"demo": True}, [1, 2], ["demo", None]])
def test_courses_claim_must_be_a_list_of_strings(codec: TokenCodec, courses: Any) -> None:
    """A courses claim that is not a list of strings is refused."""
    with pytest.raises(AuthError, match="courses"):
        codec.verify(signed({"sub": "alice", "courses": courses}))


def test_missing_sub_is_refused(codec: TokenCodec) -> None:
    """A token without sub is refused."""
    with pytest.raises(AuthError):
        codec.verify(signed({"role": "learner"}))


@pytest.mark.parametrize("sub", ["bad user", "x" * 65, "a/b"])
def test_bad_sub_is_refused(codec: TokenCodec, sub: str) -> None:
    """A signed token whose sub is not a valid user id is refused."""
    with pytest.raises(AuthError):
        codec.verify(signed({"sub": sub}))


@pytest.mark.parametrize("user", ["", "bad user", "x" * 65, "a/b", "ünï"])
def test_issue_refuses_invalid_user_id(codec: TokenCodec, user: str) -> None:
    """issue() refuses user ids outside 1-64 characters of letters, digits and _.@:-."""
    with pytest.raises(AuthError):
        codec.issue(user)


def test_issue_refuses_unknown_role(codec: TokenCodec) -> None:
    """issue() refuses a role that is not learner, instructor or admin."""
    with pytest.raises(AuthError):
        codec.issue("alice", role="root")  # type: ignore[arg-type]


# A valid id with a newline or another control character somewhere in it.
_CONTROL = st.characters(categories=["Cc"]) | st.sampled_from(["\u2028", "\u2029"])
_TAINTED_IDS = st.builds(
    lambda base, at, char: base[: at % (len(base) + 1)] + char + base[at % (len(base) + 1) :],
    st.text(string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=63),
    st.integers(0, 64),
    _CONTROL,
)


@given(_TAINTED_IDS)
@example("alice\n")
def test_signed_sub_with_a_control_character_is_refused(sub: str) -> None:
    """A correctly signed token for ``alice\\n`` (or any id with a control character) is refused."""
    with pytest.raises(AuthError, match="subject"):
        TokenCodec(SECRET, ISSUER).verify(signed({"sub": sub}))


@given(_TAINTED_IDS)
@example("demo\n")
def test_signed_course_with_a_control_character_is_refused(course: str) -> None:
    """A correctly signed token granting ``demo\\n`` (a look-alike course) is refused."""
    with pytest.raises(AuthError, match="courses"):
        TokenCodec(SECRET, ISSUER).verify(signed({"sub": "alice", "courses": ["demo", course]}))


@given(_TAINTED_IDS)
@example("alice\n")
def test_issue_refuses_ids_with_a_control_character(ident: str) -> None:
    """issue() signs neither a user id nor a course id holding a control character."""
    codec = TokenCodec(SECRET, ISSUER)
    with pytest.raises(AuthError):
        codec.issue(ident)
    with pytest.raises(AuthError):
        codec.issue("alice", courses=["demo", ident])


# -- course rights --------------------------------------------------------------


def test_admin_may_use_every_course() -> None:
    """An admin may use courses outside their claim."""
    admin = Principal(user="root", role="admin", courses=frozenset())
    assert admin.may_use("demo")
    assert admin.may_use("anything")


@pytest.mark.parametrize("role", ["learner", "instructor"])
def test_others_may_use_only_their_courses(role: Any) -> None:
    """Learners and instructors may use only the courses in their claim."""
    principal = Principal(user="alice", role=role, courses=frozenset({"demo"}))
    assert principal.may_use("demo")
    assert not principal.may_use("logic")


# -- the signing secret -----------------------------------------------------------


def test_load_secret_creates_file_with_mode_0600(tmp_path: Path) -> None:
    """Without a setting, a long random secret is written to the data dir, owner-only."""
    settings = settings_in(tmp_path)
    secret = load_secret(settings)
    path = tmp_path / "data" / SECRET_FILE
    assert len(secret) >= 32
    assert path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_secret_is_stable(tmp_path: Path) -> None:
    """A second call (a restart) returns the same secret and leaves the file alone."""
    settings = settings_in(tmp_path)
    first = load_secret(settings)
    path = tmp_path / "data" / SECRET_FILE
    before = path.read_text()
    assert load_secret(settings) == first
    assert path.read_text() == before


def test_load_secret_differs_per_data_dir(tmp_path: Path) -> None:
    """Two fresh data directories get different secrets."""
    one = load_secret(settings_in(tmp_path / "one"))
    two = load_secret(settings_in(tmp_path / "two"))
    assert one != two


def test_load_secret_honours_the_setting(tmp_path: Path) -> None:
    """A configured secret is used as is and no file is created."""
    configured = "c" * 32
    assert load_secret(settings_in(tmp_path, jwt_secret=configured)) == configured
    assert not (tmp_path / "data" / SECRET_FILE).exists()


def test_load_secret_refuses_short_setting(tmp_path: Path) -> None:
    """A configured secret shorter than 32 characters is refused."""
    with pytest.raises(AuthError, match="32"):
        load_secret(settings_in(tmp_path, jwt_secret="c" * 31))


def test_load_secret_never_returns_an_empty_secret(tmp_path: Path) -> None:
    """An empty secret file does not yield an empty signing secret."""
    path = tmp_path / "data" / SECRET_FILE
    path.parent.mkdir(parents=True)
    path.touch(mode=0o600)
    try:
        secret = load_secret(settings_in(tmp_path))
    except AuthError:
        return  # refusing to start is an acceptable fix too
    assert len(secret) >= 32


# -- Authorization header ------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer   abc  ", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("abc.def.ghi", None),
    ],
)
def test_bearer_from_headers(header: str | None, token: str | None) -> None:
    """Only the Bearer scheme (any case) with a non-empty token yields a token."""
    assert bearer_from_headers(header) == token
