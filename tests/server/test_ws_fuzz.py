"""Hypothesis throws malformed frames at a live connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.settings import Settings
from realtime.client import TutorClient
from realtime.protocol import CLIENT_TYPES, ErrorCode
from tests.support.server import RunningServer, run_server

CODES = {v for k, v in vars(ErrorCode).items() if k.isupper()}
# Finite floats only: json.dumps writes Infinity, which is not JSON, so such a frame is
# (rightly) bad_json without a ref, and the strategies below want valid JSON.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.none() | st.text(min_size=1, max_size=64)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _frame(obj: dict[str, Any], ref: str | None) -> dict[str, Any]:
    if ref is not None:
        obj["id"] = ref
    return obj


bad_frames = st.one_of(
    # Not JSON at all.
    st.text(max_size=200).filter(lambda t: not _is_json(t)).map(lambda t: (t, None)),
    # JSON, but not an object.
    (st.lists(json_values, max_size=3) | json_scalars).map(lambda v: (json.dumps(v), None)),
    # An object of an unknown type.
    st.tuples(st.text(max_size=20).filter(lambda t: t not in CLIENT_TYPES), ids).map(
        lambda t: (json.dumps(_frame({"type": t[0]}, t[1])), t[1])
    ),
    # A known type with a field the protocol does not have.
    st.tuples(st.sampled_from(CLIENT_TYPES), st.text(min_size=1, max_size=10), json_values, ids)
    .filter(
        lambda t: t[1] not in {"type", "id", "course", "text", "session", "mode", "stream", "after"}
    )
    .map(lambda t: (json.dumps(_frame({"type": t[0], t[1]: t[2]}, t[3])), t[3])),
    # An ask whose fields have the wrong types.
    st.tuples(json_values.filter(lambda v: not isinstance(v, str)), ids).map(
        lambda t: (json.dumps(_frame({"type": "ask", "course": t[0], "text": t[0]}, t[1])), t[1])
    ),
)


@pytest.fixture
async def fuzz_server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings()) as srv:
        yield srv


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(bad_frames, min_size=1, max_size=6))
async def test_malformed_frames_each_get_an_error(
    fuzz_server: RunningServer, frames: list[tuple[str, str | None]]
) -> None:
    """Every malformed frame is answered with a typed error; the connection stays usable."""
    client = await TutorClient.connect(fuzz_server.ws_url, fuzz_server.token())
    try:
        for raw, ref in frames:
            await client.ws.send(raw)
            reply = await client.recv(5)
            assert reply["type"] == "error", (raw, reply)
            assert reply["code"] in CODES
            assert reply["ref"] == ref
        await client.send({"type": "ping", "id": "still-there"})
        assert await client.recv(5) == {"type": "pong", "ref": "still-there"}
    finally:
        await client.close()
    for _ in range(100):
        if not fuzz_server.runtime.connections:
            break
        await asyncio.sleep(0.01)
    assert not fuzz_server.runtime.connections
    assert len(fuzz_server.runtime.tasks) == 0
