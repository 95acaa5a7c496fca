"""Guarded hints across pods: a withheld sentence is never shown, resumed or taken over.

Two pods on one Redis, a scripted model that states the answer in every other
sentence, slowly, so the hint is still streaming when its pod dies.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from devtools.cluster import DevCluster
from realtime.client import TutorClient
from tests.realtime.test_faults import follow_in_other_tab, stored_answer
from tests.support.fake_openai import FakeOpenAI, Reply, run_fake_openai

PROBLEM = {
    "statement": "Is this argument valid: all men are mortal, Socrates is a man, so he is mortal?",
    "answer": "valid",
    "accept": ["yes"],
    "policy": "open",
    "pages": [2],
}
# Safe and leaking sentences alternate; the model is slow enough to outlive a pod.
SENTENCES = [
    "Look at the premises one by one. ",
    "The argument is valid. ",
    "Ask whether the conclusion could be false while the premises are true. ",
    "Which premise mentions Socrates? ",
] * 3


def gives_it_away(text: str) -> bool:
    return bool(re.search(r"\bis valid\b|\byes\b", text.lower()))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    reply = Reply.answer(SENTENCES, token_delay_s=0.25)
    async with run_fake_openai(default=reply, model="tutor-model") as server:
        yield server


@pytest.fixture
async def two_pods(fake: FakeOpenAI) -> AsyncIterator[DevCluster]:
    env = {
        "LIVETUTOR_LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "test-key",
        "LLM_MODEL": "tutor-model",
        "LIVETUTOR_LLM_CONNECT_RETRIES": "0",
        "LIVETUTOR_ASK_BURST": "50",
        "LIVETUTOR_LOG_LEVEL": "warning",
        "LIVETUTOR_REDIS_LEASE_S": "1",
    }
    async with DevCluster(pods=2, sentinels=0, replica=False, pod_env=env) as cluster:
        token = cluster.token("ines", role="instructor")
        async with httpx.AsyncClient(base_url=cluster.pods[0].http_url, timeout=10) as http:
            response = await http.put(
                "/courses/demo/problems/socrates",
                json=PROBLEM,
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code in (200, 201), response.text
        yield cluster


async def test_a_guarded_hint_taken_over_never_shows_a_withheld_sentence(
    two_pods: DevCluster,
) -> None:
    """kill -9 mid-hint: the other pod guards the rest; every tab sees the same safe text."""
    first, second = two_pods.pods
    token = two_pods.token("alice")
    asker = await TutorClient.connect(first.ws_url, token)
    watcher = await TutorClient.connect(second.ws_url, token)
    ask = await asker.ask("Just tell me", mode="hint", problem="socrates")
    start = await asker.wait_for(lambda f: f["type"] == "stream.start", timeout_s=30)
    seen = (await asker.wait_for(lambda f: f["type"] == "delta", timeout_s=30))["seq"]
    following = asyncio.create_task(follow_in_other_tab(watcher, start["session"], ask))
    await asyncio.sleep(0.3)
    await first.kill()
    again = await TutorClient.connect(second.ws_url, token)
    await again.send({"type": "resume", "stream": start["stream"], "after": 0})
    resumed = await again.answer(ask, stream=start["stream"], timeout_s=60)
    followed = await asyncio.wait_for(following, timeout=60)
    stored = await stored_answer(second.http_url, token, start["session"])
    for client in (asker, watcher, again):
        await client.ws.close()
    assert seen >= 1
    assert followed.end["taken_over"] is True
    assert followed.end["hint_level"] == 1
    assert resumed.text == followed.text == stored
    assert not gives_it_away(stored)
    assert "kept this back" in stored
    assert "Which premise mentions Socrates?" in stored
