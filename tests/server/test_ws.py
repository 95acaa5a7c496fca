"""End to end over a real socket: /ws protocol v1 on embedded defaults."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from core.settings import Settings
from realtime.client import TutorClient
from tests.conftest import SECRET
from tests.support.server import RunningServer, run_server


async def test_ask_streams_answer_with_sources(server: RunningServer) -> None:
    """An ask yields stream.start, deltas with seq 1..n, and stream.end with sources."""
    async with await server.client() as client:
        assert client.welcome["protocol"] == 1
        assert client.welcome["user"] == "alice"
        assert client.welcome["pod"] == "test-pod"
        ask = await client.ask("What makes a deductive argument valid?")
        answer = await client.answer(ask)
    assert answer.seqs == list(range(1, len(answer.seqs) + 1))
    assert len(answer.seqs) > 3
    assert answer.reason == "stop"
    assert answer.end["model"] == "offline"
    assert answer.end["cached"] is False
    assert "valid" in answer.text
    pages = {s["page"] for s in answer.sources}
    assert 2 in pages
    assert all(s["document"] and s["snippet"] for s in answer.sources)


async def test_answer_and_question_are_stored(server: RunningServer) -> None:
    """The learner's message and the answer, with sources and stream id, are readable over HTTP."""
    async with await server.client() as client:
        answer = await client.answer(await client.ask("How do I weigh evidence?"))
    headers = {"Authorization": f"Bearer {server.token()}"}
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get(f"/sessions/{answer.session}/messages", headers=headers)
        listing = await http.get("/sessions", headers=headers)
    assert response.status_code == 200
    learner, tutor = response.json()["messages"]
    assert (learner["role"], learner["text"]) == ("learner", "How do I weigh evidence?")
    assert tutor["role"] == "tutor"
    assert tutor["text"] == answer.text
    assert tutor["stream"] == answer.stream
    assert tutor["reason"] == "stop"
    assert tutor["sources"] == answer.sources
    assert [s["id"] for s in listing.json()["sessions"]] == [answer.session]


async def test_same_session_keeps_history(server: RunningServer) -> None:
    """A second ask naming the session continues it."""
    async with await server.client() as client:
        first = await client.answer(await client.ask("What is a fallacy?"))
        second = await client.answer(
            await client.ask("And what is a straw man?", session=first.session)
        )
    assert second.session == first.session
    messages = await server.runtime.store.list_messages(first.session)
    assert [m.role for m in messages] == ["learner", "tutor", "learner", "tutor"]


@pytest.mark.parametrize(
    "how",
    ["missing", "forged", "expired", "wrong-issuer", "garbage"],
)
async def test_bad_token_is_refused_before_accept(server: RunningServer, how: str) -> None:
    """Missing, forged, expired or garbage tokens get HTTP 403 and no socket."""
    now = int(time.time())
    claims = {"sub": "alice", "role": "learner", "iss": "livetutor", "iat": now, "exp": now + 60}
    tokens = {
        "missing": "",
        "forged": jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": now - 10}, SECRET, algorithm="HS256"),
        "wrong-issuer": jwt.encode({**claims, "iss": "someone"}, SECRET, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{server.ws_url}?token={tokens[how]}")
    assert info.value.response.status_code == 403
    assert not server.runtime.connections


async def test_token_in_authorization_header(server: RunningServer) -> None:
    """A bearer token in the Authorization header is accepted."""
    headers = {"Authorization": f"Bearer {server.token('carol')}"}
    async with connect(server.ws_url, additional_headers=headers) as ws:
        welcome = await ws.recv()
    assert '"user":"carol"' in str(welcome)


async def test_token_in_subprotocol(server: RunningServer) -> None:
    """A bearer.<jwt> subprotocol authenticates; livetutor.v1 is the one selected."""
    protocols = ["livetutor.v1", f"bearer.{server.token('dave')}"]
    async with connect(server.ws_url, subprotocols=protocols) as ws:  # type: ignore[arg-type]
        welcome = await ws.recv()
        assert ws.subprotocol == "livetutor.v1"
    assert '"user":"dave"' in str(welcome)


async def test_origin_allowlist(make_settings: Callable[..., Settings]) -> None:
    """An origin outside the allowlist is refused with 403; a listed one connects."""
    settings = make_settings(ws={"allowed_origins": ["https://tutor.example"]})
    async with run_server(settings) as srv:
        url = f"{srv.ws_url}?token={srv.token()}"
        with pytest.raises(InvalidStatus) as info:
            await connect(url, origin="https://evil.example")  # type: ignore[arg-type]
        assert info.value.response.status_code == 403
        async with connect(url, origin="https://tutor.example") as ws:  # type: ignore[arg-type]
            assert "welcome" in str(await ws.recv())


async def test_other_users_session_is_forbidden(server: RunningServer) -> None:
    """Bob can neither ask in nor read Alice's session."""
    async with await server.client("alice") as alice:
        answer = await alice.answer(await alice.ask("What is induction?"))
    async with await server.client("bob") as bob:
        attempt = await bob.answer(await bob.ask("Let me in", session=answer.session))
        await bob.send({"type": "open", "id": "o1", "session": answer.session})
        opened = await bob.wait_for(lambda f: f.get("ref") == "o1")
    assert attempt.errors[0]["code"] == "session_forbidden"
    assert not attempt.stream
    assert opened["code"] == "session_forbidden"
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get(
            f"/sessions/{answer.session}/messages",
            headers={"Authorization": f"Bearer {server.token('bob')}"},
        )
        anonymous = await http.get(f"/sessions/{answer.session}/messages")
    assert response.status_code == 403
    assert anonymous.status_code == 401
    messages = await server.runtime.store.list_messages(answer.session)
    assert [m.text for m in messages if m.role == "learner"] == ["What is induction?"]


async def test_messages_page_back_with_before(server: RunningServer) -> None:
    """GET /sessions/{id}/messages?before=<id> gives the page ahead of that message."""
    async with await server.client() as client:
        first = await client.answer(await client.ask("What is induction?"))
        await client.answer(await client.ask("And deduction?", session=first.session))
    headers = {"Authorization": f"Bearer {server.token()}"}
    url = f"/sessions/{first.session}/messages"
    async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as http:
        everything = (await http.get(url)).json()["messages"]
        last_two = (await http.get(url, params={"limit": 2})).json()["messages"]
        earlier = await http.get(url, params={"limit": 2, "before": last_two[0]["id"]})
        foreign = await http.get(url, params={"before": "not-a-message"})
    assert len(everything) == 4
    assert last_two == everything[2:]
    assert earlier.json()["messages"] == everything[:2]
    assert foreign.json()["messages"] == []


async def test_course_outside_token_is_refused(server: RunningServer) -> None:
    """An ask for a course not in the token's courses claim gets course_forbidden."""
    async with await server.client() as client:
        answer = await client.answer(await client.ask("hello", course="chemistry"))
    assert answer.errors[0]["code"] == "course_forbidden"


async def test_unknown_course_for_admin(server: RunningServer) -> None:
    """An admin may use any course, but a course that does not exist is course_unknown."""
    token = server.runtime.codec.issue("root", role="admin")
    async with await TutorClient.connect(server.ws_url, token) as client:
        answer = await client.answer(await client.ask("hello", course="nope"))
        good = await client.answer(await client.ask("What is a premise?", course="demo"))
    assert answer.errors[0]["code"] == "course_unknown"
    assert good.reason == "stop"


@pytest.mark.parametrize(
    ("raw", "code", "ref"),
    [
        ("{not json", "bad_json", None),
        ("[1, 2]", "invalid_frame", None),
        ('{"type": "shout", "id": "r1"}', "unknown_type", "r1"),
        ('{"id": "r2"}', "unknown_type", "r2"),
        ('{"type": "ask", "id": "r3", "text": "hi"}', "invalid_frame", "r3"),
        ('{"type": "ask", "id": "r4", "course": "demo", "text": 5}', "invalid_frame", "r4"),
        ('{"type": "ask", "id": "r5", "course": "demo", "text": " "}', "invalid_frame", "r5"),
        (
            '{"type": "ask", "id": "r6", "course": "demo", "text": "x", "mode": "y"}',
            "invalid_frame",
            "r6",
        ),
        ('{"type": "ping", "id": "r7", "extra": 1}', "invalid_frame", "r7"),
        ('{"type": "cancel", "id": "r8", "stream": "../etc"}', "invalid_frame", "r8"),
        ('{"type": "resume", "id": "r9", "stream": "s", "after": -1}', "invalid_frame", "r9"),
        (
            '{"type": "ask", "id": "r12", "course": "demo", "text": "a\\u0000b"}',
            "invalid_frame",
            "r12",
        ),
        ('{"type": "cancel", "id": "r10", "stream": "nope"}', "stream_unknown", "r10"),
        ('{"type": "resume", "id": "r11", "stream": "nope"}', "stream_unknown", "r11"),
    ],
)
async def test_bad_frame_gets_error_and_connection_stays(
    server: RunningServer, raw: str, code: str, ref: str | None
) -> None:
    """Each bad frame is answered with a typed error carrying its ref; the socket stays usable."""
    async with await server.client() as client:
        await client.ws.send(raw)
        error = await client.recv(5)
        await client.send({"type": "ping", "id": "after"})
        pong = await client.recv(5)
    assert (error["type"], error["code"], error["ref"]) == ("error", code, ref)
    assert error["message"]
    assert pong == {"type": "pong", "ref": "after"}


async def test_question_over_limit_is_too_long(make_settings: Callable[..., Settings]) -> None:
    """A question longer than max_question_chars gets too_long and nothing is stored."""
    async with run_server(make_settings(ws={"max_question_chars": 50})) as srv:
        async with await srv.client() as client:
            answer = await client.answer(await client.ask("why " * 20))
        assert answer.errors[0]["code"] == "too_long"
        assert await srv.runtime.store.list_sessions("alice") == []


async def test_binary_frame_closes_1003(server: RunningServer) -> None:
    """A binary frame closes the connection with 1003."""
    async with await server.client() as client:
        await client.ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as info:
            await client.recv(5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1003


async def test_oversized_frame_closes_1009(make_settings: Callable[..., Settings]) -> None:
    """A frame over max_frame_bytes closes the connection with 1009."""
    async with run_server(make_settings(ws={"max_frame_bytes": 4096})) as srv:
        async with await srv.client() as client:
            await client.send({"type": "ping", "id": "x", "pad": "a" * 5000})
            with pytest.raises(ConnectionClosed) as info:
                await client.recv(5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_ask_rate_limit(make_settings: Callable[..., Settings]) -> None:
    """Asks beyond the user's burst get rate_limited with a retry hint, across connections."""
    async with run_server(make_settings(ws={"ask_burst": 2, "ask_rate_per_min": 1})) as srv:
        async with await srv.client() as one, await srv.client() as two:
            first = await one.answer(await one.ask("What is a premise?"))
            second = await two.answer(await two.ask("What is a conclusion?"))
            third = await one.answer(await one.ask("What is validity?"))
    assert first.reason == second.reason == "stop"
    assert third.errors[0]["code"] == "rate_limited"
    assert third.errors[0]["retry_after_ms"] > 0


async def test_concurrent_stream_limit(make_settings: Callable[..., Settings]) -> None:
    """A connection may run at most max_streams_per_connection answers at once."""
    settings = make_settings(ws={"max_streams_per_connection": 1}, llm={"offline_pace_ms": 5})
    async with run_server(settings) as srv, await srv.client() as client:
        first = await client.ask("What is an argument?")
        start = await client.wait_for(lambda f: f["type"] == "stream.start")
        second = await client.answer(await client.ask("What is a fallacy?"))
        done = await client.answer(first, stream=start["stream"])
        third = await client.answer(await client.ask("What is a fallacy?"))
    assert second.errors[0]["code"] == "too_many_streams"
    assert done.reason == "stop"
    assert third.reason == "stop"


async def test_cancel_stops_stream(make_settings: Callable[..., Settings]) -> None:
    """cancel ends the stream with reason cancelled; the partial answer is stored as such."""
    async with run_server(make_settings(llm={"offline_pace_ms": 20})) as srv:
        async with await srv.client() as client:
            ask = await client.ask("Explain correlation and causation")
            start = await client.wait_for(lambda f: f["type"] == "stream.start")
            await client.wait_for(lambda f: f["type"] == "delta")
            await client.send({"type": "cancel", "id": "c1", "stream": start["stream"]})
            answer = await client.answer(ask, stream=start["stream"], after=1)
        assert answer.reason == "cancelled"
        assert srv.runtime.tutor.running == 0
        tutor = (await srv.runtime.store.list_messages(start["session"]))[-1]
        assert (tutor.role, tutor.reason, tutor.stream_id) == (
            "tutor",
            "cancelled",
            start["stream"],
        )


async def test_other_user_cannot_cancel(make_settings: Callable[..., Settings]) -> None:
    """Cancelling another user's stream answers stream_unknown and the stream goes on."""
    async with run_server(make_settings(llm={"offline_pace_ms": 5})) as srv:
        async with await srv.client("alice") as alice, await srv.client("bob") as bob:
            ask = await alice.ask("What is a fallacy?")
            start = await alice.wait_for(lambda f: f["type"] == "stream.start")
            await bob.send({"type": "cancel", "id": "c", "stream": start["stream"]})
            refused = await bob.recv(5)
            answer = await alice.answer(ask)
    assert refused["code"] == "stream_unknown"
    assert answer.reason == "stop"


async def test_hint_mode_guides_and_levels_up(server: RunningServer) -> None:
    """Hint answers guide with steps, and the next hint in the session goes further."""
    async with await server.client() as client:
        first = await client.answer(await client.ask("What makes an argument valid?", mode="hint"))
        second = await client.answer(
            await client.ask("Another hint please: validity?", mode="hint", session=first.session)
        )
    assert "1. Reread page" in first.text
    assert "for you to finish" not in first.text
    assert "for you to finish" in second.text
    session = await server.runtime.store.get_session(first.session)
    assert session is not None and session.hint_level == 2


async def test_idle_connection_is_closed(make_settings: Callable[..., Settings]) -> None:
    """A connection with no frames for idle_timeout_s closes with 4408."""
    async with run_server(make_settings(ws={"idle_timeout_s": 0.3})) as srv:
        async with await srv.client() as client:
            with pytest.raises(ConnectionClosed) as info:
                await client.recv(10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4408


async def test_resume_on_new_connection(make_settings: Callable[..., Settings]) -> None:
    """After a drop mid-answer, resume on a new connection yields the rest exactly once."""
    async with run_server(make_settings(llm={"offline_pace_ms": 3})) as srv:
        client = await srv.client()
        ask = await client.ask("Explain inductive strength")
        start = await client.wait_for(lambda f: f["type"] == "stream.start")
        seen = []
        while len(seen) < 3:
            frame = await client.wait_for(lambda f: f["type"] == "delta")
            seen.append(frame)
        await client.close()
        async with await srv.client() as again:
            await again.send({"type": "resume", "id": "r", "stream": start["stream"], "after": 3})
            rest = await again.answer(ask, stream=start["stream"], after=3)
        full = "".join(f["text"] for f in seen) + rest.text
        stored = (await srv.runtime.store.list_messages(start["session"]))[-1]
    assert rest.reason == "stop"
    assert rest.seqs[0] == 4
    assert full == stored.text


async def test_resume_ended_stream_replays_rest(server: RunningServer) -> None:
    """Resuming a finished stream replays what was missed and its stream.end."""
    async with await server.client() as client:
        answer = await client.answer(await client.ask("What is a straw man?"))
        await client.send({"type": "resume", "id": "r", "stream": answer.stream, "after": 2})
        rest = await client.answer(answer.ask, stream=answer.stream, after=2)
    assert rest.seqs == answer.seqs[2:]
    assert rest.end == answer.end


async def test_resume_other_users_stream_is_unknown(server: RunningServer) -> None:
    """A stream of another user cannot be resumed."""
    async with await server.client("alice") as alice:
        answer = await alice.answer(await alice.ask("What is a straw man?"))
    async with await server.client("bob") as bob:
        await bob.send({"type": "resume", "id": "r", "stream": answer.stream, "after": 0})
        error = await bob.recv(5)
    assert error["code"] == "stream_unknown"


async def test_second_tab_sees_session_live(make_settings: Callable[..., Settings]) -> None:
    """A tab that opens the session gets its history and the other tab's next answer live."""
    async with run_server(make_settings(llm={"offline_pace_ms": 2})) as srv:
        async with await srv.client() as tab1, await srv.client() as tab2:
            first = await tab1.answer(await tab1.ask("What is a fallacy?"))
            await tab2.send({"type": "open", "id": "o", "session": first.session})
            opened = await tab2.wait_for(lambda f: f["type"] == "session")
            ask = await tab1.ask("And a false dilemma?", session=first.session)
            in_tab1 = await tab1.answer(ask)
            in_tab2 = await tab2.answer(ask)
    assert [m["role"] for m in opened["messages"]] == ["learner", "tutor"]
    assert opened["messages"][1]["text"] == first.text
    assert in_tab2.text == in_tab1.text
    assert in_tab2.seqs == in_tab1.seqs


async def test_open_lists_running_streams(make_settings: Callable[..., Settings]) -> None:
    """open names running streams with their text so far; live deltas follow with no gap."""
    async with run_server(make_settings(llm={"offline_pace_ms": 3})) as srv:
        async with await srv.client() as tab1, await srv.client() as tab2:
            ask = await tab1.ask("Explain correlation and causation")
            start = await tab1.wait_for(lambda f: f["type"] == "stream.start")
            await tab1.wait_for(lambda f: f["type"] == "delta")
            await tab2.send({"type": "open", "id": "o", "session": start["session"]})
            opened = await tab2.wait_for(lambda f: f["type"] == "session")
            running = opened["streams"][0]
            rest = await tab2.answer(ask, stream=running["stream"], after=running["seq"])
            await tab1.answer(ask, after=1)
        stored = (await srv.runtime.store.list_messages(start["session"]))[-1]
    assert running["stream"] == start["stream"]
    assert running["seq"] >= 1
    assert rest.seqs[0] == running["seq"] + 1
    assert running["text"] + rest.text == stored.text


async def test_slow_consumer_is_closed_others_unaffected(
    make_settings: Callable[..., Settings],
) -> None:
    """A client that stops reading is closed with 1008; another client keeps being served."""
    settings = make_settings(ws={"outbound_queue_frames": 8, "close_timeout_s": 10})
    async with run_server(settings) as srv:
        # A tiny receive buffer and a one-frame client queue: the client soon stops reading.
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow = await TutorClient.connect(srv.ws_url, srv.token("slow"), sock=sock, max_queue=1)
        healthy = await srv.client("healthy")
        flood = '{"type":"ping","id":"' + "p" * 60 + '"}'
        sent = 0
        registry = srv.runtime.metrics.registry

        def closed() -> float:
            return registry.get_sample_value("slow_consumer_disconnects_total") or 0.0

        while closed() == 0 and sent < 200_000:
            for _ in range(200):
                await slow.ws.send(flood)
            sent += 200
        assert closed() == 1
        answer = await healthy.answer(await healthy.ask("What is a premise?"))
        assert answer.reason == "stop"
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await slow.recv(10)
        await healthy.close()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_drain_sends_reconnect_finishes_streams_then_1012(
    make_settings: Callable[..., Settings],
) -> None:
    """On shutdown: reconnect notice, readiness 503, running answer completes, close 1012."""
    settings = make_settings(drain_s=10, llm={"offline_pace_ms": 4})
    srv_cm = run_server(settings)
    srv = await srv_cm.__aenter__()
    client = await srv.client()
    ask = await client.ask("Explain correlation and causation")
    await client.wait_for(lambda f: f["type"] == "delta")
    srv.server.should_exit = True
    notice = await client.wait_for(lambda f: f["type"] == "reconnect")
    async with httpx.AsyncClient(base_url=srv.http_url) as http:
        ready = await http.get("/health/ready")
    with pytest.raises(InvalidStatus) as refused:
        await srv.client("late")
    late_ask = await client.answer(await client.ask("One more?"))
    assert late_ask.errors[0]["code"] == "draining"
    assert ready.status_code == 503
    assert refused.value.response.status_code == 503
    answer = await client.answer(ask, after=1)
    with pytest.raises(ConnectionClosed) as info:
        await client.recv(10)
    await srv_cm.__aexit__(None, None, None)
    assert notice["after_ms"] == 10_000
    assert answer.reason == "stop"
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012


async def test_drain_interrupts_streams_past_deadline(
    make_settings: Callable[..., Settings],
) -> None:
    """A stream still running when drain_s is over ends with reason interrupted, stored."""
    settings = make_settings(drain_s=0.2, llm={"offline_pace_ms": 50})
    async with run_server(settings) as srv:
        client = await srv.client()
        ask = await client.ask("Explain correlation and causation")
        start = await client.wait_for(lambda f: f["type"] == "stream.start")
        srv.server.should_exit = True
        answer = await client.answer(ask, stream=start["stream"])
        store = srv.runtime.store
        stored = (await store.list_messages(start["session"]))[-1]
    assert answer.reason == "interrupted"
    assert stored.reason == "interrupted"


async def test_health_endpoints(server: RunningServer) -> None:
    """Liveness answers 200; readiness reports the store and answers 200 when ready."""
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        live = await http.get("/health/live")
        ready = await http.get("/health/ready")
    assert live.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["checks"]["store"] == "ok"


async def test_no_task_left_after_close(server: RunningServer) -> None:
    """Closing a connection mid-answer leaves no connection behind; the stream finishes."""
    client = await server.client()
    await client.ask("What is an argument?")
    await client.close()
    # The stream leaves tutor.running when it starts finishing; its task ends after the
    # answer is stored and its stream.end journaled.
    for _ in range(1000):
        runtime = server.runtime
        if not runtime.connections and runtime.tutor.running == 0 and not len(runtime.tasks):
            break
        await asyncio.sleep(0.01)
    assert not server.runtime.connections
    assert server.runtime.tutor.running == 0
    assert len(server.runtime.tasks) == 0
