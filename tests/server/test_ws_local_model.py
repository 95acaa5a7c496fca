"""The ``local`` provider end to end: a pod runs llama.cpp's server with the bundled SmolLM2.

No script stands in for the model here: the pod starts ``python -m llama_cpp.server``
as its child and every answer is decoded by SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import psutil
import pytest

from core.settings import Settings
from tests.support.server import RunningServer, run_server
from tutor.local_model import LocalProvider, bundled_model_path, model_name

pytestmark = pytest.mark.skipif(
    bundled_model_path() is None, reason="needs the 'local' extra (make test installs it)"
)

MODEL = model_name(bundled_model_path()) if bundled_model_path() else ""
QUESTION = "What makes an argument valid? Explain it step by step with an example."


def local_settings(make_settings: Callable[..., Settings], **groups: Any) -> Settings:
    llm = {
        "provider": "local",
        "temperature": 0.0,
        "max_output_tokens": 120,
        "first_token_timeout_s": 60.0,
        "token_timeout_s": 20.0,
        "connect_retries": 0,
        "retry_backoff_s": 0.05,
        **groups.pop("llm", {}),
    }
    local = {"context_tokens": 2048, "threads": 1, **groups.pop("local", {})}
    return make_settings(llm=llm, local=local, **groups)


def provider_of(server: RunningServer) -> LocalProvider:
    provider = server.runtime.provider
    assert isinstance(provider, LocalProvider)
    return provider


async def ready_pod(server: RunningServer) -> None:
    """Wait until readiness says the model has loaded."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        for _ in range(600):
            response = await http.get("/health/ready")
            if response.status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the pod never became ready: {response.json()}")


@pytest.fixture
async def pod(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    async with run_server(local_settings(make_settings)) as running:
        await ready_pod(running)
        yield running


async def test_readiness_waits_for_the_model_to_load(
    make_settings: Callable[..., Settings],
) -> None:
    """/health/ready answers 503 with llm "loading" until llama.cpp serves the model, then 200."""
    async with run_server(local_settings(make_settings)) as running:
        async with httpx.AsyncClient(base_url=running.http_url, timeout=5) as http:
            first = await http.get("/health/ready")
        await ready_pod(running)
        assert provider_of(running).server.ready
    assert first.status_code == 503
    assert first.json()["checks"]["llm"] == "loading"


async def test_explain_answer_streams_from_the_local_model(pod: RunningServer) -> None:
    """An explain answer comes from SmolLM2 in many deltas, cites the course and is stored."""
    async with await pod.client() as client:
        answer = await client.answer(await client.ask(QUESTION), timeout_s=120)
    assert answer.reason in ("stop", "length")
    assert answer.end["model"] == MODEL
    assert answer.end["fallback"] is False
    assert len(answer.seqs) > 5
    assert len(answer.text.split()) > 20
    assert answer.sources and all(s["document_id"] == "demo" for s in answer.sources)
    stored = (await pod.runtime.store.list_messages(answer.session))[-1]
    assert stored.text == answer.text
    assert stored.role == "tutor"


async def test_cancel_stops_decoding_in_llama_cpp(make_settings: Callable[..., Settings]) -> None:
    """cancel mid-answer: llama.cpp logs the client's disconnect and stops using the CPU."""
    settings = local_settings(make_settings, llm={"max_output_tokens": 800})
    async with run_server(settings) as pod:
        await ready_pod(pod)
        await cancel_and_watch_the_model(pod)


async def cancel_and_watch_the_model(pod: RunningServer) -> None:
    provider = provider_of(pod)
    assert provider.server.pid is not None
    model = psutil.Process(provider.server.pid)
    async with await pod.client() as client:
        ask = await client.ask("Write a long essay on every kind of argument in the course.")
        start = await client.wait_for(lambda f: f["type"] == "stream.start", timeout_s=60)
        await client.wait_for(lambda f: f["type"] == "delta", timeout_s=60)
        busy_before = sum(model.cpu_times()[:2])
        await asyncio.sleep(0.5)
        busy = sum(model.cpu_times()[:2]) - busy_before
        await client.send({"type": "cancel", "stream": start["stream"]})
        answer = await client.answer(ask, after=1, timeout_s=60)
    assert answer.reason == "cancelled"
    log_path = provider.server.log_path
    assert log_path is not None
    for _ in range(100):
        if "Disconnected from client" in log_path.read_text(errors="replace"):
            break
        await asyncio.sleep(0.1)
    assert "Disconnected from client" in log_path.read_text(errors="replace")
    # Decoding used the CPU before the cancel; after it, the model server idles.
    idle_before = sum(model.cpu_times()[:2])
    await asyncio.sleep(1.0)
    idle = sum(model.cpu_times()[:2]) - idle_before
    assert busy > 0.2
    assert idle < busy / 2


async def test_killed_model_gives_error_then_fallback_then_recovers(
    make_settings: Callable[..., Settings],
) -> None:
    """kill -9 of llama.cpp mid-answer: llm_unavailable, a labelled fallback, then the model."""
    settings = local_settings(
        make_settings,
        llm={"breaker_failures": 1, "breaker_reset_s": 1.0},
        local={"restart_backoff_s": 3.0},
    )
    async with run_server(settings) as pod:
        await ready_pod(pod)
        provider = provider_of(pod)
        async with await pod.client() as client:
            ask = await client.ask(QUESTION)
            first = await client.wait_for(lambda f: f["type"] == "delta", timeout_s=60)
            pid = provider.server.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            broken = await client.answer(ask, after=first["seq"], timeout_s=60)
            # The breaker is open and the model is restarting: the offline tutor answers.
            during = await client.answer(await client.ask(QUESTION), timeout_s=60)
            # The model is back once a new process serves it.
            for _ in range(600):
                if provider.server.ready and provider.server.pid not in (None, pid):
                    break
                await asyncio.sleep(0.1)
            assert provider.server.pid not in (None, pid)
            await asyncio.sleep(settings.llm.breaker_reset_s)
            after = await client.answer(await client.ask(QUESTION), timeout_s=120)
    assert broken.reason == "error"
    assert broken.errors[0]["code"] == "llm_unavailable"
    assert during.end["fallback"] is True
    assert during.end["model"] == "offline"
    assert during.errors[0]["code"] == "llm_unavailable"
    assert after.end["fallback"] is False
    assert after.end["model"] == MODEL
    assert provider.server.restarts == 1
    assert provider.breaker.state == "closed"
