"""Shared questions: what one learner typed reaches others only when it identifies no one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from core.settings import Settings
from tests.support.documents import bearer
from tests.support.server import RunningServer, run_server

PRIVATE = "My student number is 4242-1187 and I failed my midterm, what is a syllogism"
SHARED = "What is a syllogism?"
FEW = "What is the difference between a premise and a conclusion?"
LEARNERS = ("lea", "max", "noa", "ola", "pia")


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    """Embedded defaults: a question is shared once five learners asked it."""
    async with run_server(make_settings()) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


def instructor(server: RunningServer, course: str = "demo") -> dict[str, str]:
    return bearer(server.token("ines", role="instructor", courses=(course,)))


async def ask_by(server: RunningServer, question: str, users: tuple[str, ...]) -> None:
    """Each user asks ``question`` once, in a session of their own."""
    for user in users:
        async with await server.client(user) as learner:
            answer = await learner.answer(await learner.ask(question))
            assert answer.reason == "stop"


async def predictions_once_shown(server: RunningServer, text: str, expected: str) -> list[str]:
    """What a new learner typing ``text`` is offered, once ``expected`` is among it.

    Asked questions are read in the background, so a prediction made before
    that read finishes does not have them yet.
    """
    items: list[str] = []
    async with await server.client("zed") as learner:
        for _ in range(100):
            await learner.send({"type": "typing", "course": "demo", "text": text})
            frame = await learner.wait_for(lambda f: f["type"] == "predictions")
            items = frame["items"]
            if expected in items:
                break
            await asyncio.sleep(0.05)
    assert expected in items
    return items


async def test_a_question_with_personal_data_is_never_offered(server: RunningServer) -> None:
    """A learner's question holding their student number is not predicted to anyone."""
    await ask_by(server, PRIVATE, LEARNERS)
    await ask_by(server, SHARED, LEARNERS)
    items = await predictions_once_shown(server, "what", SHARED)
    assert not any("4242" in item for item in items)


async def test_a_question_too_few_learners_asked_is_not_offered(server: RunningServer) -> None:
    """A question four learners asked, one of them three times, is not predicted to others."""
    await ask_by(server, FEW, (*LEARNERS[:4], LEARNERS[0], LEARNERS[0]))
    await ask_by(server, SHARED, LEARNERS)
    items = await predictions_once_shown(server, "what", SHARED)
    assert FEW not in items


async def test_instructors_see_the_shared_questions(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """GET lists the questions enough learners asked, without the others."""
    await ask_by(server, SHARED, LEARNERS)
    await ask_by(server, FEW, LEARNERS[:2])
    response = await http.get("/courses/demo/questions", headers=instructor(server))
    assert response.status_code == 200
    assert response.json() == {"course": "demo", "questions": [{"question": SHARED, "asked": 5}]}


async def test_only_the_courses_instructors_manage_its_questions(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """Learners and instructors of other courses can neither list nor remove them."""
    await ask_by(server, SHARED, LEARNERS)
    learner = bearer(server.token("lea"))
    other = instructor(server, "another")
    body = {"question": SHARED}
    for headers, code in ((learner, "role_forbidden"), (other, "course_forbidden")):
        listed = await http.get("/courses/demo/questions", headers=headers)
        removed = await http.request(
            "DELETE", "/courses/demo/questions", json=body, headers=headers
        )
        assert (listed.status_code, listed.json()["error"]) == (403, code)
        assert (removed.status_code, removed.json()["error"]) == (403, code)
    nobody = await http.get("/courses/demo/questions")
    assert nobody.status_code == 401
    still = await http.get("/courses/demo/questions", headers=instructor(server))
    assert still.json()["questions"] == [{"question": SHARED, "asked": 5}]


async def test_a_removed_question_is_no_longer_offered(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """Once an instructor removes a shared question, typing no longer brings it up."""
    await ask_by(server, FEW, LEARNERS)
    await ask_by(server, SHARED, LEARNERS)
    await predictions_once_shown(server, "what", FEW)
    response = await http.request(
        "DELETE",
        "/courses/demo/questions",
        json={"question": FEW.upper()},
        headers=instructor(server),
    )
    assert response.status_code == 200
    assert response.json() == {"course": "demo", "question": FEW.upper(), "status": "removed"}
    items = await predictions_once_shown(server, "what", SHARED)
    assert FEW not in items


async def test_a_removed_question_asked_again_stays_removed(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """More learners asking a removed question again do not bring it back."""
    await ask_by(server, FEW, LEARNERS)
    removed = await http.request(
        "DELETE", "/courses/demo/questions", json={"question": FEW}, headers=instructor(server)
    )
    assert removed.status_code == 200
    await ask_by(server, FEW, (*LEARNERS, "quinn", "rosa"))
    await ask_by(server, SHARED, LEARNERS)
    listed = await http.get("/courses/demo/questions", headers=instructor(server))
    assert listed.json()["questions"] == [{"question": SHARED, "asked": 5}]
    # Another removal makes this pod read the asked questions afresh.
    await http.request(
        "DELETE", "/courses/demo/questions", json={"question": "x y z"}, headers=instructor(server)
    )
    items = await predictions_once_shown(server, "what", SHARED)
    assert FEW not in items


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "bad_json"),
        (b'{"question": 5}', 400, "bad_request"),
        (b'{"question": " ? "}', 400, "bad_request"),
        (b"[]", 400, "bad_request"),
    ],
)
async def test_removing_needs_the_questions_text(
    server: RunningServer, http: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    """A DELETE without a question's text in its JSON body is refused with 400."""
    headers = {**instructor(server), "content-type": "application/json"}
    response = await http.request(
        "DELETE", "/courses/demo/questions", content=body, headers=headers
    )
    assert (response.status_code, response.json()["error"]) == (status, code)
