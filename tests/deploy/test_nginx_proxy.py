"""nginx with deploy/nginx/nginx.conf in front of a real server: what learners go through.

The configuration is used as shipped except for its addresses (the compose service name
`server` becomes the test server's 127.0.0.1 port; nginx listens on a free local port) and
its /tmp paths (moved into the test's directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from realtime.client import TutorClient
from tests.deploy.files import NGINX_CONF
from tests.deploy.test_validators import tool
from tests.support.server import RunningServer, run_server

START_TIMEOUT_S = 10.0


@dataclass
class Proxy:
    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def local_config(tmp_path: Path, listen_port: int, server_port: int) -> Path:
    """The shipped configuration with local addresses and paths."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    replacements = {
        "listen 8080;": f"listen 127.0.0.1:{listen_port};",
        f"http://server:{Settings().port};": f"http://127.0.0.1:{server_port};",
        " /tmp/": f" {tmp_path}/",
    }
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in {NGINX_CONF.name}"
        text = text.replace(old, new)
    path = tmp_path / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
async def proxy(server: RunningServer, tmp_path: Path) -> AsyncIterator[Proxy]:
    """nginx on a free port, proxying to the test server."""
    async with nginx_in_front_of(server, tmp_path) as running:
        yield running


@contextlib.asynccontextmanager
async def nginx_in_front_of(server: RunningServer, tmp_path: Path) -> AsyncIterator[Proxy]:
    """nginx with the shipped configuration on a free port, proxying to ``server``."""
    nginx = tool("nginx", "Debian: apt-get install nginx")
    port = free_port()
    config = local_config(tmp_path, port, server.port)
    process = await asyncio.create_subprocess_exec(
        *(nginx, "-e", "stderr", "-p", f"{tmp_path}/", "-c", str(config), "-g", "daemon off;"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while not await accepts(port):
            if process.returncode is not None or loop.time() > deadline:
                errors = await process.stderr.read() if process.stderr else b""
                pytest.fail(f"nginx did not start: {errors.decode()}")
            await asyncio.sleep(0.05)
        yield Proxy(port)
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def test_answer_streams_through_nginx(server: RunningServer, proxy: Proxy) -> None:
    """A WebSocket through nginx is upgraded and streams a whole answer."""
    async with await TutorClient.connect(proxy.ws_url, server.token()) as client:
        assert client.welcome["user"] == "alice"
        answer = await client.answer(await client.ask("What makes an argument valid?"))
    assert answer.reason == "stop"
    assert answer.seqs == list(range(1, len(answer.seqs) + 1))


async def test_responses_carry_security_headers(proxy: Proxy) -> None:
    """Responses come with one CSP (frame-ancestors 'none'), nosniff and no framing."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{proxy.http_url}/health/live")
    assert response.status_code == 200
    [csp] = response.headers.get_list("content-security-policy")
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_errors_carry_security_headers_too(proxy: Proxy) -> None:
    """Error answers (here an unknown path) carry the same headers."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{proxy.http_url}/no-such-page")
    assert response.status_code == 404
    assert "content-security-policy" in response.headers


async def test_metrics_are_not_published(server: RunningServer, proxy: Proxy) -> None:
    """/metrics answers 404 through nginx while the server's metrics port serves it."""
    async with httpx.AsyncClient() as client:
        direct = await client.get(server.metrics_url)
        proxied = await client.get(f"{proxy.http_url}/metrics")
    assert direct.status_code == 200
    assert proxied.status_code == 404


async def test_dev_signin_gives_no_token_through_nginx(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Development sign-in on embedded defaults refuses what nginx forwards from a client."""
    async with run_server(make_settings(auth={"jwt_secret": ""})) as srv:
        async with nginx_in_front_of(srv, tmp_path) as proxy, httpx.AsyncClient() as client:
            response = await client.post(
                f"{proxy.http_url}/auth/dev-token", json={"user": "mallory", "role": "learner"}
            )
    assert response.status_code == 403
    assert response.json()["error"] == "dev_signin_remote"
    assert "token" not in response.json()


async def test_one_ip_is_rate_limited(proxy: Proxy) -> None:
    """A client IP sending far more than the burst allows gets 429s, and some requests pass."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=20)) as client:
        responses = await asyncio.gather(
            *(client.get(f"{proxy.http_url}/health/live") for _ in range(200))
        )
    statuses = [r.status_code for r in responses]
    assert statuses.count(429) > 0
    assert statuses.count(200) >= 100
