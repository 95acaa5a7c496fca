"""Development sign-in: on only for embedded defaults on loopback, and hard to misuse."""

from __future__ import annotations

import ipaddress
import socket
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


@pytest.mark.parametrize(
    "header",
    [
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
        {"Forwarded": "for=127.0.0.1"},
        {"X-Forwarded-Host": "localhost"},
    ],
    ids=["x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-host"],
)
async def test_proxied_requests_get_no_token(
    make_settings: Callable[..., Settings], header: dict[str, str]
) -> None:
    """A request carrying a proxy's forwarding header is refused, whatever address it names."""
    async with run_server(make_settings(**EMBEDDED)) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            response = await post(http, {"user": "mallory"}, **header)
    assert response.status_code == 403
    assert response.json()["error"] == "dev_signin_remote"
    assert "token" not in response.json()


def outward_address() -> str:
    """This host's address on its outward interface (not loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent over UDP
        except OSError:
            pytest.skip("this host has no network interface besides loopback")
        address: str = probe.getsockname()[0]
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("this host has no network interface besides loopback")
    return address


async def test_a_request_from_another_address_gets_no_token(
    make_settings: Callable[..., Settings],
) -> None:
    """Served on every interface by another launcher, a non-loopback peer is refused."""
    address = outward_address()
    async with run_server(make_settings(**EMBEDDED), host="0.0.0.0") as srv:
        async with httpx.AsyncClient(base_url=f"http://{address}:{srv.port}") as http:
            response = await post(http, {"user": "mallory"}, host=f"localhost:{srv.port}")
    assert response.status_code == 403
    assert response.json()["error"] == "dev_signin_remote"
    assert "token" not in response.json()


@pytest.mark.parametrize(
    "overrides",
    [EMBEDDED, {"auth": {"dev_signin": "on"}}],
    ids=["auto", "on"],
)
async def test_admin_tokens_are_never_issued(
    make_settings: Callable[..., Settings], overrides: dict[str, Any]
) -> None:
    """Asking for role admin is refused with role_forbidden, however sign-in was turned on."""
    async with run_server(make_settings(**overrides)) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            response = await post(http, {"user": "mallory", "role": "admin"})
    assert response.status_code == 403
    assert response.json()["error"] == "role_forbidden"
    assert "token" not in response.json()


async def test_explicitly_on_answers_through_a_proxy(
    make_settings: Callable[..., Settings],
) -> None:
    """LIVETUTOR_DEV_SIGNIN=on (a public demo) issues learner tokens to proxied requests."""
    async with run_server(make_settings(auth={"dev_signin": "on"})) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            response = await post(
                http, {"user": "zoe"}, **{"X-Forwarded-For": "203.0.113.7", "host": "tutor.example"}
            )
    assert response.status_code == 200
    assert srv.runtime.codec.verify(response.json()["token"]).role == "learner"
