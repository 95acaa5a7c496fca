"""/metrics as Prometheus scrapes it (on the metrics port), after a scripted session."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from core.metrics import exported_names
from core.settings import Settings
from tests.support.server import RunningServer, run_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: RunningServer, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as http:
        response = await http.get(server.metrics_url, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_scripted_session_shows_in_metrics(make_settings: Callable[..., Settings]) -> None:
    """Asks, a cancel, a resume, a bad frame, a cache hit and HTTP reads show in the counts."""
    async with run_server(make_settings(llm={"offline_pace_ms": 10})) as srv:
        async with await srv.client() as client:
            done = await client.answer(await client.ask("What is a fallacy?"))
            ask = await client.ask("Explain correlation and causation")
            start = await client.wait_for(lambda f: f["type"] == "stream.start")
            await client.wait_for(lambda f: f["type"] == "delta")
            await client.send({"type": "cancel", "stream": start["stream"]})
            cancelled = await client.answer(ask, after=1)
            await client.send({"type": "resume", "stream": done.stream, "after": 2})
            await client.answer(done.ask, stream=done.stream, after=2)
            await client.ws.send("{not json")
            await client.recv(5)
            hit = await client.answer(await client.ask("What is a fallacy?"))
            samples = await scrape(srv)
        headers = {"Authorization": f"Bearer {srv.token()}"}
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            for session in (done.session, cancelled.session):
                assert (await http.get(f"/sessions/{session}/messages", headers=headers)).is_success
        after = await scrape(srv)
    assert cancelled.reason == "cancelled"
    assert hit.end["cached"] is True
    assert value(samples, "websocket_connections_total", outcome="accepted") == 1
    assert value(samples, "websocket_active_connections") == 1
    assert value(samples, "websocket_messages_total", direction="in", type="ask") == 3
    assert value(samples, "websocket_messages_total", direction="in", type="cancel") == 1
    assert value(samples, "websocket_messages_total", direction="in", type="resume") == 1
    assert value(samples, "websocket_messages_total", direction="in", type="invalid") == 1
    assert value(samples, "websocket_messages_total", direction="out", type="stream.end") == 4
    assert value(samples, "answers_total", reason="stop") == 2
    assert value(samples, "answers_total", reason="cancelled") == 1
    assert value(samples, "stream_resumes_total", outcome="ok") == 1
    assert value(samples, "llm_requests_total", provider="offline", outcome="ok") == 1
    assert value(samples, "time_to_first_token_seconds_count") == 3
    assert value(samples, "answer_generation_seconds_count") == 3
    assert value(samples, "tokens_streamed_total") >= len(done.text.split())
    # The cached answer's deltas come from the cache, not the coalescer.
    assert 0 < value(samples, "delta_frames_total") <= value(samples, "tokens_streamed_total")
    assert value(samples, "event_loop_lag_seconds_count") > 0
    assert 0.015 <= value(samples, "flush_window_seconds") <= 0.1
    assert value(samples, "retrieval_seconds_count") == 2  # the cached answer needed none
    assert value(samples, "cache_hits_total", cache="answers", tier="l1") == 1
    assert value(samples, "cache_misses_total", cache="answers") == 2
    assert value(samples, "cache_misses_total", cache="retrieval") == 2
    assert value(samples, "cache_load_seconds_count", cache="retrieval") == 2
    assert value(samples, "backplane_up") == 1
    route = "/sessions/{session_id}/messages"
    assert value(after, "http_requests_total", method="GET", route=route, status="200") == 2
    assert value(after, "websocket_active_connections") == 0


async def test_session_ids_do_not_grow_label_cardinality(server: RunningServer) -> None:
    """1,000 distinct session ids in URLs add one route series, not 1,000."""
    headers = {"Authorization": f"Bearer {server.token()}"}
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        for _ in range(1000):
            await http.get(f"/sessions/{uuid.uuid4().hex}/messages", headers=headers)
        await http.get("/no/such/path")
    samples = await scrape(server)
    series = [labels for (name, labels) in samples if name == "http_requests_total"]
    routes = {dict(labels)["route"] for labels in series}
    assert routes <= {"/sessions/{session_id}/messages", "unmatched"}
    assert len(series) <= 3


async def test_request_id_is_echoed_or_made(server: RunningServer) -> None:
    """A sane X-Request-ID comes back as sent; a missing or hostile one is replaced."""
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        echoed = await http.get("/health/live", headers={"X-Request-ID": "req-42"})
        made = await http.get("/health/live")
        hostile = await http.get("/health/live", headers={"X-Request-ID": "a b\tc" * 30})
    assert echoed.headers["x-request-id"] == "req-42"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "a b\tc" * 30


async def test_metrics_are_not_served_on_the_main_port(server: RunningServer) -> None:
    """The port learners reach answers /metrics 404; the metrics port serves it."""
    async with httpx.AsyncClient() as http:
        main = await http.get(f"{server.http_url}/metrics")
        metrics = await http.get(server.metrics_url)
    assert main.status_code == 404
    assert "websocket_active_connections" not in main.text
    assert metrics.status_code == 200


async def test_metrics_token(make_settings: Callable[..., Settings]) -> None:
    """With LIVETUTOR_METRICS_TOKEN set, /metrics needs it."""
    async with run_server(make_settings(metrics_token="scrape-secret")) as srv:
        async with httpx.AsyncClient() as http:
            refused = await http.get(srv.metrics_url)
            wrong = await http.get(srv.metrics_url, headers={"Authorization": "Bearer nope"})
        samples = await scrape(srv, token="scrape-secret")
    assert refused.status_code == wrong.status_code == 401
    assert ("process_resident_memory_bytes", frozenset()) in samples


async def test_refusals_and_capacity(make_settings: Callable[..., Settings]) -> None:
    """A bad token counts as refused_auth; a connection past capacity gets 503."""
    async with run_server(make_settings(ws={"max_connections": 1})) as srv:
        with pytest.raises(InvalidStatus):
            await connect(f"{srv.ws_url}?token=forged")
        async with await srv.client():
            with pytest.raises(InvalidStatus) as full:
                await srv.client("bob")
            samples = await scrape(srv)
    assert full.value.response.status_code == 503
    assert value(samples, "websocket_connections_total", outcome="refused_auth") == 1
    assert value(samples, "websocket_connections_total", outcome="refused_capacity") == 1
    assert value(samples, "websocket_connection_capacity") == 1


def test_exported_names_cover_every_family() -> None:
    """exported_names lists each metric in its scraped form."""
    names = exported_names()
    assert {"tokens_streamed_total", "time_to_first_token_seconds_bucket"} <= names
    assert {"websocket_active_connections", "process_resident_memory_bytes"} <= names
