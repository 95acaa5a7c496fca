"""X-Request-ID: echoed only when the whole value is sane, never up to a newline."""

from __future__ import annotations

import asyncio
import string

from hypothesis import example, given
from hypothesis import strategies as st
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from core.metrics import Metrics
from server.middleware import RequestContext

ID_CHARS = string.ascii_letters + string.digits + "._:-"
# Control characters a header value can carry to the app (latin-1, as ASGI hands it over).
CONTROLS = st.characters(categories=["Cc"], max_codepoint=0xFF)


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


def answered_request_id(given: str) -> str:
    """The X-Request-ID the middleware answers a GET carrying ``given`` with."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-request-id", given.encode("latin-1"))],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def request() -> None:
        await RequestContext(_ok, Metrics())(scope, receive, send)

    asyncio.run(request())
    start = next(m for m in sent if m["type"] == "http.response.start")
    answered: bytes = dict(start["headers"])[b"x-request-id"]
    return answered.decode("latin-1")


@given(st.text(ID_CHARS, min_size=1, max_size=64))
def test_a_sane_request_id_is_echoed(request_id: str) -> None:
    """1 to 64 of letters, digits and ._:- come back as sent."""
    assert answered_request_id(request_id) == request_id


@given(st.text(ID_CHARS, min_size=1, max_size=63), st.integers(0, 63), CONTROLS)
@example("req-1", 5, "\n")
def test_a_request_id_with_a_control_character_is_replaced(base: str, at: int, char: str) -> None:
    """A request id with a newline (``req-1\\n``) or other control character is not echoed."""
    at = min(at, len(base))
    hostile = base[:at] + char + base[at:]
    answered = answered_request_id(hostile)
    assert answered != hostile
    assert all(c in string.hexdigits for c in answered)
