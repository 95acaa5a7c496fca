"""Problems with answer keys and the course policy over HTTP: who writes, who reads what."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from core.auth import Role
from core.settings import Settings
from server import problems
from tests.support.documents import bearer, upload
from tests.support.pdfs import HARBOUR_FACTS, make_pdf
from tests.support.postgres import temporary_database
from tests.support.server import RunningServer, run_server

PROBLEM: dict[str, Any] = {
    "statement": "Is 'all swans are white, so this swan is white' valid?",
    "answer": "yes",
    "accept": ["valid", "it is valid"],
    "policy": "hint_only",
    "pages": [3, 2],
}
LEARNER_FIELDS = {"id", "course", "statement", "policy", "pages"}


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    """Embedded defaults with the fast lexical embedder."""
    async with run_server(make_settings(knowledge={"embedder": "hashing"})) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


def as_user(
    server: RunningServer, role: Role = "learner", courses: tuple[str, ...] = ("demo",)
) -> dict[str, str]:
    """Authorization for a user of ``role`` in ``courses``."""
    return bearer(server.token(f"{role}-1", role=role, courses=courses))


async def put(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    problem_id: str = "p1",
    course: str = "demo",
    **changes: Any,
) -> httpx.Response:
    """PUT the sample problem with ``changes`` (a value of None drops the field)."""
    body = {k: v for k, v in (PROBLEM | changes).items() if v is not None}
    return await http.put(f"/courses/{course}/problems/{problem_id}", json=body, headers=headers)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# Writing


async def test_instructor_creates_then_replaces_a_problem(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """The first PUT creates the problem (201), the next replaces it (200), pages in order."""
    instructor = as_user(server, "instructor")
    created = await put(http, instructor)
    replaced = await put(http, instructor, answer="valid", accept=[])
    assert created.status_code == 201, created.text
    assert created.json() | {"updated_at": 0} == {
        **PROBLEM,
        "id": "p1",
        "course": "demo",
        "pages": [2, 3],
        "updated_at": 0,
        "updated_by": "instructor-1",
    }
    assert replaced.status_code == 200
    read = await http.get("/courses/demo/problems/p1", headers=instructor)
    assert (read.json()["answer"], read.json()["accept"]) == ("valid", [])


async def test_a_problem_needs_only_statement_and_answer(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """Without accept, policy and pages the problem is open, with none of them."""
    response = await put(http, as_user(server, "admin"), accept=None, policy=None, pages=None)
    assert response.status_code == 201, response.text
    assert (response.json()["accept"], response.json()["policy"], response.json()["pages"]) == (
        [],
        "open",
        [],
    )


async def test_a_course_with_a_document_takes_problems(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A course exists once a document is added to it, and then takes problems."""
    token = server.token("ines", role="instructor", courses=("harbour",))
    before = await put(http, bearer(token), course="harbour")
    added = await upload(http, "harbour", make_pdf(HARBOUR_FACTS), token)
    assert added.status_code == 202, added.text
    after = await put(http, bearer(token), course="harbour")
    assert (before.status_code, before.json()["error"]) == (404, "course_unknown")
    assert after.status_code == 201, after.text


async def test_instructor_deletes_a_problem(server: RunningServer, http: httpx.AsyncClient) -> None:
    """A deleted problem is gone for everyone; deleting it again is problem_unknown."""
    instructor = as_user(server, "instructor")
    await put(http, instructor)
    deleted = await http.delete("/courses/demo/problems/p1", headers=instructor)
    again = await http.delete("/courses/demo/problems/p1", headers=instructor)
    read = await http.get("/courses/demo/problems/p1", headers=as_user(server))
    assert deleted.json() == {"id": "p1", "course": "demo", "status": "deleted"}
    assert (again.status_code, again.json()["error"]) == (404, "problem_unknown")
    assert (read.status_code, read.json()["error"]) == (404, "problem_unknown")


async def test_a_full_course_takes_no_new_problem(
    server: RunningServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the cap a new problem gets 409 rejected, while an existing one can still be replaced."""
    monkeypatch.setattr(problems, "MAX_PROBLEMS_PER_COURSE", 2)
    instructor = as_user(server, "instructor")
    for problem_id in ("p1", "p2"):
        assert (await put(http, instructor, problem_id)).status_code == 201
    third = await put(http, instructor, "p3")
    replaced = await put(http, instructor, "p1", answer="valid")
    assert (third.status_code, third.json()["error"]) == (409, "rejected")
    assert replaced.status_code == 200


# Reading


async def test_learner_lists_problems_without_answer_keys(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A learner's list shows id, statement, policy and pages, by id, and no answer or accept."""
    instructor = as_user(server, "instructor")
    for problem_id in ("p2", "p1"):
        await put(http, instructor, problem_id)
    listed = await http.get("/courses/demo/problems", headers=as_user(server))
    assert listed.status_code == 200
    problems = listed.json()["problems"]
    assert [p["id"] for p in problems] == ["p1", "p2"]
    assert all(set(p) == LEARNER_FIELDS for p in problems)
    assert PROBLEM["answer"] not in listed.text and "it is valid" not in listed.text


async def test_learner_reads_one_problem_without_its_answer_key(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A learner's view of one problem has no answer or accept."""
    await put(http, as_user(server, "instructor"))
    read = await http.get("/courses/demo/problems/p1", headers=as_user(server))
    assert read.json() == {
        "id": "p1",
        "course": "demo",
        "statement": PROBLEM["statement"],
        "policy": "hint_only",
        "pages": [2, 3],
    }


async def test_instructor_lists_problems_with_answer_keys(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """The course's instructor sees each problem's answer and accepted forms."""
    instructor = as_user(server, "instructor")
    await put(http, instructor)
    [problem] = (await http.get("/courses/demo/problems", headers=instructor)).json()["problems"]
    assert (problem["answer"], problem["accept"]) == (PROBLEM["answer"], PROBLEM["accept"])


async def test_course_without_problems_lists_none(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A course with no problems lists an empty array."""
    listed = await http.get("/courses/demo/problems", headers=as_user(server))
    assert listed.json() == {"course": "demo", "problems": []}


# Refusals


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_learner_cannot_write_problems(
    server: RunningServer, http: httpx.AsyncClient, method: str
) -> None:
    """A learner of the course gets 403 role_forbidden for PUT and DELETE, and nothing changes."""
    await put(http, as_user(server, "instructor"))
    response = await http.request(
        method,
        "/courses/demo/problems/p1",
        json=PROBLEM | {"answer": "no"},
        headers=as_user(server),
    )
    assert (response.status_code, response.json()["error"]) == (403, "role_forbidden")
    read = await http.get("/courses/demo/problems/p1", headers=as_user(server, "instructor"))
    assert read.json()["answer"] == PROBLEM["answer"]


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("learner", "GET", "/courses/demo/problems"),
        ("learner", "GET", "/courses/demo/problems/p1"),
        ("learner", "GET", "/courses/demo/policy"),
        ("instructor", "PUT", "/courses/demo/problems/p1"),
        ("instructor", "DELETE", "/courses/demo/problems/p1"),
        ("instructor", "PUT", "/courses/demo/policy"),
    ],
)
async def test_users_of_another_course_are_refused(
    server: RunningServer, http: httpx.AsyncClient, role: Role, method: str, path: str
) -> None:
    """A token without the course gets 403 course_forbidden, as on the other course routes."""
    await put(http, as_user(server, "instructor"))
    response = await http.request(
        method, path, json={"mode": "open"}, headers=as_user(server, role, ("algebra",))
    )
    assert (response.status_code, response.json()["error"]) == (403, "course_forbidden")


async def test_no_token_is_unauthorized(http: httpx.AsyncClient) -> None:
    """Without a token the problems are not listed: 401 unauthorized."""
    response = await http.get("/courses/demo/problems")
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")


@pytest.mark.parametrize(
    "path",
    [
        "/courses/demo/problems/a%20b",
        f"/courses/demo/problems/{'p' * 65}",
        "/courses/a%0A/problems/p1",
    ],
)
async def test_malformed_ids_are_bad_requests(
    server: RunningServer, http: httpx.AsyncClient, path: str
) -> None:
    """A problem or course id outside 1-64 identifier characters gets 400 bad_request."""
    response = await http.put(path, json=PROBLEM, headers=as_user(server, "admin"))
    assert (response.status_code, response.json()["error"]) == (400, "bad_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/courses/nosuch/problems/p1"),
        ("GET", "/courses/nosuch/problems"),
        ("PUT", "/courses/nosuch/policy"),
        ("GET", "/courses/nosuch/policy"),
    ],
)
async def test_unknown_course_is_course_unknown(
    server: RunningServer, http: httpx.AsyncClient, method: str, path: str
) -> None:
    """A course with no documents that is not the demo gets 404 course_unknown, even for admins."""
    response = await http.request(
        method, path, json=PROBLEM | {"mode": "open"}, headers=as_user(server, "admin")
    )
    assert (response.status_code, response.json()["error"]) == (404, "course_unknown")


async def test_unknown_problem_is_problem_unknown(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """Reading a problem that does not exist gets 404 problem_unknown."""
    response = await http.get("/courses/demo/problems/p9", headers=as_user(server))
    assert (response.status_code, response.json()["error"]) == (404, "problem_unknown")


@pytest.mark.parametrize("answer", ["", "   \n\t"])
async def test_empty_answer_is_refused(
    server: RunningServer, http: httpx.AsyncClient, answer: str
) -> None:
    """An empty or blank answer gets 400 answer_empty and stores nothing."""
    instructor = as_user(server, "instructor")
    response = await put(http, instructor, answer=answer)
    assert (response.status_code, response.json()["error"]) == (400, "answer_empty")
    listed = await http.get("/courses/demo/problems", headers=instructor)
    assert listed.json()["problems"] == []


@pytest.mark.parametrize(
    "changes",
    [
        {"statement": "s" * 4_001},
        {"answer": "a" * 501},
        {"accept": ["a"] * 21},
        {"accept": ["a" * 501]},
        {"pages": list(range(1, 52))},
    ],
    ids=["statement", "answer", "accept-forms", "accept-form", "pages"],
)
async def test_oversized_fields_are_too_long(
    server: RunningServer, http: httpx.AsyncClient, changes: dict[str, Any]
) -> None:
    """A field over its limit gets 400 too_long."""
    response = await put(http, as_user(server, "instructor"), **changes)
    assert (response.status_code, response.json()["error"]) == (400, "too_long")


async def test_fields_at_their_limits_are_accepted(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A problem with every field at its limit is stored whole."""
    changes: dict[str, Any] = {
        "statement": "s" * 4_000,
        "answer": "a" * 500,
        "accept": ["b" * 500] * 20,
        "pages": list(range(1, 51)),
    }
    response = await put(http, as_user(server, "instructor"), **changes)
    assert response.status_code == 201, response.text
    assert {k: response.json()[k] for k in changes} == changes


@pytest.mark.parametrize(
    "changes",
    [
        {"statement": "  "},
        {"accept": [" "]},
        {"accept": "yes"},
        {"pages": [0]},
        {"pages": [True]},
        {"pages": [1_000_000]},
        {"policy": "closed"},
        {"answer": "a\u0000b"},
        {"hints": ["try harder"]},
        {"answer": None},
    ],
)
async def test_malformed_problems_are_bad_requests(
    server: RunningServer, http: httpx.AsyncClient, changes: dict[str, Any]
) -> None:
    """A blank statement, bad accept, pages or policy, a NUL, an unknown or missing field: 400."""
    response = await put(http, as_user(server, "instructor"), **changes)
    assert (response.status_code, response.json()["error"]) == (400, "bad_request")


async def test_body_that_is_not_json_is_bad_json(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A body that does not parse gets 400 bad_json."""
    headers = as_user(server, "instructor") | {"content-type": "application/json"}
    response = await http.put("/courses/demo/problems/p1", content=b"{nope", headers=headers)
    assert (response.status_code, response.json()["error"]) == (400, "bad_json")


async def test_body_that_is_not_declared_json_is_unsupported(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A form body gets 415 unsupported_media_type."""
    response = await http.put(
        "/courses/demo/problems/p1", data={"answer": "yes"}, headers=as_user(server, "instructor")
    )
    assert (response.status_code, response.json()["error"]) == (415, "unsupported_media_type")


async def test_body_over_the_cap_is_too_large(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A body over 64 KiB gets 413 too_large."""
    response = await put(http, as_user(server, "instructor"), statement="s" * 70_000)
    assert (response.status_code, response.json()["error"]) == (413, "too_large")


# Course policy


async def test_policy_of_a_course_is_open_until_set(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A learner reads the default policy: open, no window, not hint-only now."""
    response = await http.get("/courses/demo/policy", headers=as_user(server))
    assert response.json() == {
        "course": "demo",
        "mode": "open",
        "hint_only_from": None,
        "hint_only_until": None,
        "hint_only_now": False,
    }


async def test_exam_window_around_now_is_hint_only_now(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A hint_only window that holds now is read back, in UTC, with hint_only_now true."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=1)
    end = now + timedelta(hours=2)
    body = {
        "mode": "hint_only",
        "hint_only_from": start.astimezone(timezone(timedelta(hours=2))).isoformat(),
        "hint_only_until": iso(end),
    }
    put_response = await http.put(
        "/courses/demo/policy", json=body, headers=as_user(server, "instructor")
    )
    read = await http.get("/courses/demo/policy", headers=as_user(server))
    expected = {
        "course": "demo",
        "mode": "hint_only",
        "hint_only_from": iso(start),
        "hint_only_until": iso(end),
        "hint_only_now": True,
    }
    assert put_response.json() == expected
    assert read.json() == expected


@pytest.mark.parametrize(
    "window",
    [
        {"hint_only_from": "+1"},
        {"hint_only_until": "-1"},
        {"hint_only_from": "-2", "hint_only_until": "-1"},
    ],
    ids=["not-yet", "over", "past"],
)
async def test_window_that_does_not_hold_now_is_not_hint_only_now(
    server: RunningServer, http: httpx.AsyncClient, window: dict[str, str]
) -> None:
    """A hint_only window that has not begun or has ended is not hint-only now."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {"mode": "hint_only"}
    for key, hours in window.items():
        body[key] = iso(now + timedelta(hours=int(hours)))
    await http.put("/courses/demo/policy", json=body, headers=as_user(server, "instructor"))
    read = await http.get("/courses/demo/policy", headers=as_user(server))
    assert read.json()["hint_only_now"] is False


async def test_hint_only_without_window_holds_now(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """hint_only with no window holds at once; setting open again lifts it."""
    instructor = as_user(server, "instructor")
    await http.put("/courses/demo/policy", json={"mode": "hint_only"}, headers=instructor)
    during = (await http.get("/courses/demo/policy", headers=as_user(server))).json()
    await http.put("/courses/demo/policy", json={"mode": "open"}, headers=instructor)
    after = (await http.get("/courses/demo/policy", headers=as_user(server))).json()
    assert (during["hint_only_now"], after["hint_only_now"]) == (True, False)


async def test_window_ending_before_it_starts_is_bad_window(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """hint_only_until at or before hint_only_from gets 400 bad_window and changes nothing."""
    body = {
        "mode": "hint_only",
        "hint_only_from": "2026-06-01T11:00:00+02:00",
        "hint_only_until": "2026-06-01T09:00:00Z",
    }
    response = await http.put(
        "/courses/demo/policy", json=body, headers=as_user(server, "instructor")
    )
    read = await http.get("/courses/demo/policy", headers=as_user(server))
    assert (response.status_code, response.json()["error"]) == (400, "bad_window")
    assert read.json()["mode"] == "open"


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "hint_only", "hint_only_from": "2026-06-01T09:00:00"},
        {"mode": "hint_only", "hint_only_until": "tomorrow"},
        {"mode": "hint_only", "hint_only_until": 1_780_000_000},
        {"mode": "exam"},
        {"hint_only_from": "2026-06-01T09:00:00Z"},
        {"mode": "open", "until": "2026-06-01T09:00:00Z"},
    ],
    ids=["no-zone", "not-a-time", "number", "mode", "no-mode", "unknown-field"],
)
async def test_malformed_policies_are_bad_requests(
    server: RunningServer, http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    """A time without zone or not ISO-8601, an unknown mode or field, no mode: 400 bad_request."""
    response = await http.put(
        "/courses/demo/policy", json=body, headers=as_user(server, "instructor")
    )
    assert (response.status_code, response.json()["error"]) == (400, "bad_request")


async def test_learner_cannot_set_the_policy(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """A learner's PUT of the policy gets 403 role_forbidden and the course stays open."""
    response = await http.put(
        "/courses/demo/policy", json={"mode": "hint_only"}, headers=as_user(server)
    )
    read = await http.get("/courses/demo/policy", headers=as_user(server))
    assert (response.status_code, response.json()["error"]) == (403, "role_forbidden")
    assert read.json()["hint_only_now"] is False


# Postgres


@pytest.mark.postgres
async def test_problems_and_policy_are_kept_in_postgres(
    make_settings: Callable[..., Settings],
) -> None:
    """On Postgres, a problem and a policy set on one server process are served by the next."""
    async with temporary_database() as dsn:
        settings = make_settings(store={"database_url": dsn}, knowledge={"embedder": "hashing"})
        async with (
            run_server(settings) as first,
            httpx.AsyncClient(base_url=first.http_url) as http,
        ):
            instructor = as_user(first, "instructor")
            assert (await put(http, instructor)).status_code == 201
            policy = await http.put(
                "/courses/demo/policy", json={"mode": "hint_only"}, headers=instructor
            )
            assert policy.status_code == 200
        async with (
            run_server(settings) as second,
            httpx.AsyncClient(base_url=second.http_url) as http,
        ):
            problem = await http.get("/courses/demo/problems/p1", headers=as_user(second))
            read = await http.get("/courses/demo/policy", headers=as_user(second))
    assert set(problem.json()) == LEARNER_FIELDS
    assert problem.json()["pages"] == [2, 3]
    assert read.json()["hint_only_now"] is True
