"""Development sign-in: on only for embedded defaults on loopback, and hard to misuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from core.settings import Settings
from tests.support.server import run_server

EMBEDDED: dict[str, Any] = {"auth": {"jwt_secret": ""}}


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, True),
        ({"LIVETUTOR_HOST": "localhost"}, True),
        ({"LIVETUTOR_HOST": "0.0.0.0"}, False),
        ({"LIVETUTOR_JWT_SECRET": "s" * 40}, False),
        ({"DATABASE_URL": "postgresql://db/livetutor"}, False),
        ({"REDIS_URL": "redis://redis:6379/0"}, False),
        ({"REDIS_SENTINELS": "10.0.0.1:26379"}, False),
        ({"LIVETUTOR_ALLOWED_ORIGINS": "https://tutor.example"}, False),
        ({"LIVETUTOR_DEV_SIGNIN": "off"}, False),
        ({"LIVETUTOR_DEV_SIGNIN": "on", "LIVETUTOR_JWT_SECRET": "s" * 40}, True),
        ({"LIVETUTOR_DEV_SIGNIN": "on", "LIVETUTOR_HOST": "0.0.0.0"}, True),
    ],
    ids=[
        "embedded",
        "localhost",
        "all-interfaces",
        "jwt-secret",
        "database",
        "redis",
        "sentinel",
        "origins",
        "off",
        "on-with-secret",
        "on-any-host",
    ],
)
def test_policy(env: dict[str, str], enabled: bool) -> None:
    """auto means embedded defaults on a loopback interface; on and off are explicit."""
    assert Settings.from_env(env).dev_signin is enabled


async def post(http: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    return await http.post("/auth/dev-token", json=body, headers=headers)


async def test_issues_a_token_the_server_accepts(make_settings: Callable[..., Settings]) -> None:
    """On embedded defaults the page gets a working token for the named user, role and courses."""
    async with run_server(make_settings(**EMBEDDED)) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            config = (await http.get("/auth/config")).json()
            made = await post(http, {"user": "zoe", "role": "instructor", "courses": ["demo", "x"]})
            token = made.json()["token"]
            sessions = await http.get("/sessions", headers={"authorization": f"Bearer {token}"})
        who = srv.runtime.codec.verify(token)
    assert config["dev_signin"] is True
    assert made.status_code == 200
    assert made.headers["cache-control"] == "no-store"
    assert (who.user, who.role, who.courses) == ("zoe", "instructor", frozenset({"demo", "x"}))
    assert sessions.status_code == 200


async def test_off_when_a_secret_is_configured(make_settings: Callable[..., Settings]) -> None:
    """With a shared JWT secret (a real deployment) the route issues nothing."""
    async with run_server(make_settings()) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            config = (await http.get("/auth/config")).json()
            made = await post(http, {"user": "mallory", "role": "admin"})
    assert config["dev_signin"] is False
    assert made.status_code == 404
    assert made.json()["error"] == "dev_signin_off"
    assert "token" not in made.json()


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"user": "zoe"}, {"host": "evil.example"}, 403),
        ({"user": "zoe"}, {"host": "evil.example:8000"}, 403),
        ({"user": "bad user!"}, {}, 400),
        ({"user": "zoe", "role": "root"}, {}, 400),
        ({"user": "zoe", "courses": []}, {}, 400),
        ({"user": "zoe", "courses": ["no spaces"]}, {}, 400),
        ({"user": "zoe", "extra": 1}, {}, 400),
    ],
    ids=["rebound-host", "rebound-host-port", "user", "role", "no-courses", "course", "unknown"],
)
async def test_refusals(
    make_settings: Callable[..., Settings], body: Any, headers: dict[str, str], status: int
) -> None:
    """A foreign Host (DNS rebinding) and malformed bodies are refused."""
    async with run_server(make_settings(**EMBEDDED)) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            response = await post(http, body, **headers)
    assert response.status_code == status


async def test_form_posts_are_refused(make_settings: Callable[..., Settings]) -> None:
    """Only application/json is read, so a cross-site form cannot post without a preflight."""
    async with run_server(make_settings(**EMBEDDED)) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            response = await http.post(
                "/auth/dev-token",
                content='{"user": "zoe"}',
                headers={"content-type": "text/plain"},
            )
    assert response.status_code == 415
