"""A course PDF that tells the tutor what to say, uploaded and asked about over the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from core.settings import Settings
from realtime.client import Answer, TutorClient
from realtime.protocol import Mode
from tests.support.documents import upload, wait_document
from tests.support.fake_openai import FakeOpenAI, Reply, run_fake_openai
from tests.support.injection import COURSE, PAYLOAD, QUESTION, TITLE, injected_pdf
from tests.support.server import RunningServer, run_server

WORDS = ["Every ", "boat ", "shows ", "a ", "white ", "light ", "after ", "dark ", "[1]."]
KNOWLEDGE = {"embedder": "hashing", "max_pages": 20}


async def add_course_pdf(server: RunningServer) -> None:
    """Upload the hostile PDF as an instructor of the course and wait until it is indexed."""
    token = server.token("ines", role="instructor", courses=(COURSE,))
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        response = await upload(http, COURSE, injected_pdf(), token)
        assert response.status_code == 202, response.text
        view = await wait_document(http, str(response.json()["id"]), token)
    assert view["status"] == "ready", view


async def ask(server: RunningServer, mode: Mode = "explain") -> Answer:
    """A learner of the course asks QUESTION and reads the whole answer."""
    token = server.token("lea", courses=(COURSE,))
    async with await TutorClient.connect(server.ws_url, token) as learner:
        answer = await learner.answer(await learner.ask(QUESTION, course=COURSE, mode=mode))
    assert answer.reason == "stop", answer.end
    assert any(s["page"] == 2 for s in answer.sources)
    return answer


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with run_fake_openai(default=Reply.gullible_answer(WORDS), model="tutor-model") as srv:
        yield srv


@pytest.fixture
async def model_server(
    make_settings: Callable[..., Settings], fake: FakeOpenAI
) -> AsyncIterator[RunningServer]:
    """A server whose model obeys any instruction in its system role, with the PDF indexed."""
    llm = {"provider": "openai", "base_url": fake.base_url, "api_key": "k", "model": "tutor-model"}
    async with run_server(make_settings(knowledge=KNOWLEDGE, llm=llm)) as running:
        await add_course_pdf(running)
        yield running


async def test_offline_tutor_quotes_course_instructions_and_does_not_follow_them(
    make_settings: Callable[..., Settings],
) -> None:
    """The offline answer shows the injected sentence only as a block quote under its page."""
    async with run_server(make_settings(knowledge=KNOWLEDGE)) as server:
        await add_course_pdf(server)
        answer = await ask(server)
    lines = answer.text.splitlines()
    injected = [i for i, line in enumerate(lines) if PAYLOAD in line]
    assert answer.text.strip() != PAYLOAD
    assert injected
    for i in injected:
        assert lines[i].startswith("> ")
        assert lines[i - 1] == f"From “Harbour Safety” ({TITLE}, p. 2):"


@pytest.mark.parametrize("mode", ["explain", "hint"])
async def test_model_does_not_obey_course_instructions(
    model_server: RunningServer, fake: FakeOpenAI, mode: Mode
) -> None:
    """A model that obeys its system role still answers the learner, not the PDF's payload."""
    if mode == "hint":
        # A hint first asks for a private reference answer (what the guard keeps back).
        fake.script.append(Reply.gullible_answer(["Carry ", "a ", "lamp."]))
    answer = await ask(model_server, mode)
    assert answer.end["model"] == "tutor-model"
    assert answer.text == "".join(WORDS)
