"""The /ws handshake: per-user connection caps, token subprotocols and well-formed identities."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from core.settings import Settings
from devtools.cluster import RedisNode
from realtime.client import TutorClient
from tests.conftest import SECRET
from tests.support.server import RunningServer, run_server

CAP = 2


async def refusal(ws_url: str, **options: Any) -> InvalidStatus:
    """The HTTP refusal a handshake gets (fails the test if it is accepted)."""
    with pytest.raises(InvalidStatus) as info:
        ws = await connect(ws_url, **options)
        await ws.close()
    return info.value


def reason(refused: InvalidStatus) -> dict[str, Any]:
    """The JSON body of a refused handshake."""
    body: dict[str, Any] = json.loads(refused.response.body or b"{}")
    return body


async def until_no_connection(server: RunningServer) -> None:
    """Wait until the pod has finished closing every connection (its slots are free by then)."""
    async with asyncio.timeout(10):
        while server.runtime.connections:  # noqa: ASYNC110 - closed by the server's own task
            await asyncio.sleep(0.01)


def auth(token: str) -> dict[str, str]:
    """The Authorization header of ``token``."""
    return {"Authorization": f"Bearer {token}"}


def signed(claims: dict[str, Any]) -> str:
    """A token with ``claims`` signed with the test servers' secret."""
    now = int(time.time())
    return jwt.encode(
        {"role": "learner", "iss": "livetutor", "iat": now, "exp": now + 60, **claims},
        SECRET,
        algorithm="HS256",
    )


# -- connections per user ---------------------------------------------------------


async def test_connections_over_the_per_user_cap_are_refused_with_429(
    make_settings: Callable[..., Settings],
) -> None:
    """One token cannot open more than the cap: the next handshake gets 429 and a reason."""
    async with run_server(make_settings(ws={"max_connections_per_user": CAP})) as srv:
        async with AsyncExitStack() as stack:
            for _ in range(CAP):
                await stack.enter_async_context(await srv.client("alice"))
            refused = await refusal(srv.ws_url, additional_headers=auth(srv.token("alice")))
            async with await srv.client("bob") as bob:
                assert bob.welcome["user"] == "bob"
    assert refused.response.status_code == 429
    assert reason(refused)["error"] == "too_many_connections"


async def test_a_closed_connection_frees_its_slot_at_once(
    make_settings: Callable[..., Settings],
) -> None:
    """After closing a tab at the cap, the learner can open another straight away."""
    async with run_server(make_settings(ws={"max_connections_per_user": 1})) as srv:
        first = await srv.client("alice")
        await first.close()
        await until_no_connection(srv)
        async with await srv.client("alice") as again:
            assert again.welcome["user"] == "alice"


async def test_the_cap_counts_connections_on_every_pod(
    make_settings: Callable[..., Settings], redis_node: RedisNode
) -> None:
    """With Redis, connections on two pods share one cap; a close on one frees a slot on both."""
    async with AsyncExitStack() as stack:
        pod_a, pod_b = [
            await stack.enter_async_context(
                run_server(
                    make_settings(
                        pod_name=name,
                        redis={"url": redis_node.url},
                        ws={"max_connections_per_user": CAP},
                    )
                )
            )
            for name in ("A", "B")
        ]
        on_a = await pod_a.client("alice")
        await stack.enter_async_context(await pod_b.client("alice"))
        token = pod_a.token("alice")
        refused = [
            await refusal(pod.ws_url, additional_headers=auth(token)) for pod in (pod_a, pod_b)
        ]
        await on_a.close()
        await until_no_connection(pod_a)
        async with await pod_b.client("alice") as again:
            assert again.welcome["pod"] == "B"
    assert [r.response.status_code for r in refused] == [429, 429]


# -- the token's subprotocol --------------------------------------------------------


@pytest.mark.parametrize("also", ["nowhere", "header", "query"])
async def test_bearer_subprotocol_alone_is_refused_and_never_echoed(
    server: RunningServer, also: str
) -> None:
    """Offering only bearer.<jwt> gets 400 with a reason, and the token is not in the response."""
    token = server.token("dave")
    url = f"{server.ws_url}?token={token}" if also == "query" else server.ws_url
    headers = auth(token) if also == "header" else {}
    refused = await refusal(
        url,
        subprotocols=[f"bearer.{token}"],
        additional_headers=headers,
    )
    assert refused.response.status_code == 400
    assert reason(refused)["error"] == "subprotocol_required"
    assert "livetutor.v1" in reason(refused)["message"]
    assert token not in str(refused.response.headers)
    assert not server.runtime.connections


async def test_bearer_subprotocol_is_never_the_one_selected(server: RunningServer) -> None:
    """Whatever the order offered, the server selects livetutor.v1 and echoes no token."""
    token = server.token("dave")
    protocols: Any = [f"bearer.{token}", "livetutor.v1"]
    async with connect(server.ws_url, subprotocols=protocols) as ws:
        welcome = json.loads(await ws.recv())
        assert ws.subprotocol == "livetutor.v1"
        assert ws.response is not None
        assert token not in str(ws.response.headers)
    assert welcome["user"] == "dave"


async def test_reference_client_sends_the_token_in_a_header_not_the_url(
    server: RunningServer,
) -> None:
    """``livetutor ask``'s client puts the token in the Authorization header, never the URL."""
    token = server.token("erin")
    async with await TutorClient.connect(server.ws_url, token) as client:
        request = client.ws.request
        assert client.welcome["user"] == "erin"
    assert request is not None
    assert token not in request.path
    assert request.headers["Authorization"] == f"Bearer {token}"


# -- identities ----------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["alice\n", "alice\r\n", "al\x00ice", "alice\x1b[31m"])
async def test_token_for_a_look_alike_user_is_refused(server: RunningServer, sub: str) -> None:
    """A correctly signed token for ``alice\\n`` opens no socket and reads no session."""
    token = signed({"sub": sub, "courses": ["demo"]})
    refused = await refusal(server.ws_url, additional_headers=auth(token))
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        listing = await http.get("/sessions", headers=auth(token))
    assert refused.response.status_code == 403
    assert listing.status_code == 401
    assert not server.runtime.connections


async def test_token_granting_a_look_alike_course_is_refused(server: RunningServer) -> None:
    """A correctly signed token whose courses claim holds ``demo\\n`` is refused."""
    token = signed({"sub": "alice", "courses": ["demo\n"]})
    refused = await refusal(server.ws_url, additional_headers=auth(token))
    assert refused.response.status_code == 403


async def test_dev_signin_refuses_a_look_alike_user(make_settings: Callable[..., Settings]) -> None:
    """Development sign-in issues no token for ``alice\\n``."""
    async with run_server(make_settings(auth={"jwt_secret": "", "dev_signin": "on"})) as srv:
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            made = await http.post("/auth/dev-token", json={"user": "alice\n"})
            good = await http.post("/auth/dev-token", json={"user": "alice"})
    assert made.status_code == 400
    assert "token" not in made.json()
    assert good.status_code == 200
