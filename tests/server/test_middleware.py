"""Request body caps and the headers of JSON answers, on a live server.

Bodies are sent over a raw socket, so a test controls what is sent and what is
held back: headers without the body they announce, or a chunked body that
never ends. A server that waited for the whole body would never answer; the
read has a bound so that such a server fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from core.settings import Settings
from server.app import MAX_BODY_BYTES
from tests.support.server import RunningServer, run_server

# Bounds the wait for an answer that, before the caps, never came.
ANSWER_BOUND_S = 10.0
CHUNK_BYTES = 8192


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@pytest.fixture
async def embedded(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    """A server on embedded defaults: development sign-in on."""
    async with run_server(make_settings(auth={"jwt_secret": ""})) as running:
        yield running


async def send_raw(port: int, head: dict[str, str], path: str, chunks: int = 0) -> Answer:
    """POST ``head``'s headers to ``path``, then ``chunks`` chunks of a body that never ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [
            f"POST {path} HTTP/1.1",
            "Host: 127.0.0.1",
            *(f"{k}: {v}" for k, v in head.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        for _ in range(chunks):
            writer.write(f"{CHUNK_BYTES:x}\r\n".encode() + b" " * CHUNK_BYTES + b"\r\n")
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), ANSWER_BOUND_S)
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(status, headers, json.loads(body) if body else None)


def document_url(server: RunningServer) -> tuple[str, dict[str, str]]:
    """The route that registers a URL to prefetch, and an instructor's header."""
    token = server.token("ines", role="instructor", courses=("harbour",))
    return "/courses/harbour/documents", {"Authorization": f"Bearer {token}"}


def dev_token(server: RunningServer) -> tuple[str, dict[str, str]]:
    """Development sign-in, which needs no token."""
    return "/auth/dev-token", {}


ROUTES = pytest.mark.parametrize("route", [dev_token, document_url], ids=["dev-token", "url"])


@ROUTES
async def test_a_huge_declared_body_is_refused_before_it_is_sent(
    embedded: RunningServer, route: Callable[[RunningServer], tuple[str, dict[str, str]]]
) -> None:
    """Headers announcing 30 MB get 413 too_large at once, without the body being sent."""
    path, auth = route(embedded)
    head = {**auth, "Content-Type": "application/json", "Content-Length": "30000000"}
    answer = await send_raw(embedded.port, head, path)
    assert answer.status == 413
    assert answer.body["error"] == "too_large"


@ROUTES
async def test_a_chunked_body_over_the_cap_is_cut_off(
    embedded: RunningServer, route: Callable[[RunningServer], tuple[str, dict[str, str]]]
) -> None:
    """A chunked body that passes the cap gets 413 too_large before it ends."""
    path, auth = route(embedded)
    head = {**auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    chunks = MAX_BODY_BYTES // CHUNK_BYTES + 1
    answer = await send_raw(embedded.port, head, path, chunks=chunks)
    assert answer.status == 413
    assert answer.body["error"] == "too_large"


async def test_a_chunked_upload_over_its_cap_is_cut_off(
    make_settings: Callable[..., Settings],
) -> None:
    """A chunked multipart upload gets 413 too_large once past its cap, before it ends."""
    settings = make_settings(knowledge={"embedder": "hashing", "max_upload_bytes": 2000})
    async with run_server(settings) as srv:
        path, auth = document_url(srv)
        head = {
            **auth,
            "Content-Type": "multipart/form-data; boundary=b0undary",
            "Transfer-Encoding": "chunked",
        }
        # The cap is the file's 2000 bytes and 64 KiB of form framing.
        answer = await send_raw(srv.port, head, path, chunks=10)
    assert answer.status == 413
    assert answer.body["error"] == "too_large"


async def test_json_answers_are_neither_sniffed_nor_stored(server: RunningServer) -> None:
    """JSON answers, errors included, say nosniff and no-store."""
    headers = {"Authorization": f"Bearer {server.token()}"}
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        answers = [
            await http.get("/sessions", headers=headers),
            await http.get("/sessions"),
            await http.get("/sessions/nope/messages", headers=headers),
            await http.post("/auth/dev-token", json={"user": "zoe"}),
            await http.get("/health/ready"),
        ]
    assert [a.status_code for a in answers] == [200, 401, 404, 404, 200]
    for answer in answers:
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"]
        assert answer.headers.get_list("cache-control") == ["no-store"]
