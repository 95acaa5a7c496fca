"""A pod killed mid-answer while a real model (SmolLM2 under llama.cpp) writes it.

Two pods share one ``livetutor llm`` model server through the OpenAI-compatible
provider, as in production. The pod that is writing the answer dies; the other
takes the stream over and asks the model to continue the partial text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.cluster import DevCluster
from devtools.local import ModelServerProcess
from realtime.client import TutorClient
from tests.realtime.test_faults import follow_in_other_tab, stored_answer
from tutor.local_model import bundled_model_path

pytestmark = pytest.mark.skipif(
    bundled_model_path() is None, reason="needs the 'local' extra (make test installs it)"
)

QUESTION = "Write a long essay on every kind of argument in the course, with examples."


@pytest.fixture
async def model(tmp_path: Path) -> AsyncIterator[ModelServerProcess]:
    server = ModelServerProcess(tmp_path / "llm.log", env={"LIVETUTOR_LOCAL_THREADS": "1"})
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
async def two_pods(model: ModelServerProcess) -> AsyncIterator[DevCluster]:
    env = {
        **model.pod_env(),
        "LIVETUTOR_LLM_TEMPERATURE": "0",
        "LIVETUTOR_LLM_MAX_OUTPUT_TOKENS": "300",
        "LIVETUTOR_LLM_FIRST_TOKEN_TIMEOUT_S": "60",
        "LIVETUTOR_LLM_TOKEN_TIMEOUT_S": "30",
        "LIVETUTOR_ASK_BURST": "50",
        "LIVETUTOR_LOG_LEVEL": "warning",
        "LIVETUTOR_REDIS_LEASE_S": "1",
    }
    async with DevCluster(pods=2, sentinels=0, replica=False, pod_env=env) as cluster:
        yield cluster


async def test_killed_pod_answer_is_continued_by_the_real_model(
    two_pods: DevCluster, model: ModelServerProcess
) -> None:
    """kill -9 of the generating pod: the other pod has the model continue; no gap, no repeat."""
    first, second = two_pods.pods
    token = two_pods.token("alice")
    asker = await TutorClient.connect(first.ws_url, token)
    watcher = await TutorClient.connect(second.ws_url, token)
    ask = await asker.ask(QUESTION)
    start = await asker.wait_for(lambda f: f["type"] == "stream.start", timeout_s=60)
    seen = 0
    for _ in range(5):
        seen = (await asker.wait_for(lambda f: f["type"] == "delta", timeout_s=60))["seq"]
    following = asyncio.create_task(follow_in_other_tab(watcher, start["session"], ask))
    await asyncio.sleep(0.2)
    await first.kill()
    again = await TutorClient.connect(second.ws_url, token)
    await again.send({"type": "resume", "stream": start["stream"], "after": seen})
    resumed = await again.answer(ask, stream=start["stream"], after=seen, timeout_s=120)
    followed = await asyncio.wait_for(following, timeout=120)
    stored = await stored_answer(second.http_url, token, start["session"])
    for client in (asker, watcher, again):
        await client.ws.close()
    assert followed.reason == resumed.reason
    assert followed.reason in ("stop", "length")
    assert followed.end["taken_over"] is True
    assert followed.end["model"] == model.model
    assert followed.end["fallback"] is False
    assert followed.text == stored
    assert stored.endswith(resumed.text)
    assert resumed.seqs == list(range(seen + 1, seen + 1 + len(resumed.seqs)))
    assert len(stored.split()) > 10
