"""HTTP routes for a course's problems with answer keys, and its tutoring policy.

    PUT    /courses/{course}/problems/{id}   JSON problem: create or replace it
    GET    /courses/{course}/problems        the course's problems, by id
    GET    /courses/{course}/problems/{id}   one problem
    DELETE /courses/{course}/problems/{id}   delete it and every learner's progress on it
    PUT    /courses/{course}/policy          JSON ``{"mode", "hint_only_from", "hint_only_until"}``
    GET    /courses/{course}/policy          the policy, and whether hints only hold now

Writing needs role ``instructor`` or ``admin`` and the course in the token's
``courses`` claim (admins: any course); reading needs the course. Learners
never see a problem's ``answer`` or ``accept``: the answer key is for the tutor
and the course's instructors. The course must exist (it has documents, or it is
the demo course). Errors are JSON ``{"error": code, "message": …}``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.auth import Principal
from core.ids import IDENT_PATTERN
from server._http import Refused, caller, course_param, runtime_of
from store.store import CoursePolicy, ProblemRecord, TutoringPolicy

log = structlog.get_logger("livetutor.problems")
EDITORS = ("instructor", "admin")

MAX_STATEMENT_CHARS = 4_000
MAX_ANSWER_CHARS = 500
MAX_ACCEPT_FORMS = 20
MAX_PAGES = 50
MAX_PROBLEMS_PER_COURSE = 1_000
_MAX_ID_CHARS = 64
_MAX_TIME_CHARS = 64
# The app's cap on JSON bodies: room for the longest problem in plain text.
_MAX_PROBLEM_BYTES = 65_536
_MAX_POLICY_BYTES = 4_096
_PROBLEM_ID = re.compile(IDENT_PATTERN)


class _ProblemBody(msgspec.Struct, forbid_unknown_fields=True):
    statement: str
    answer: str
    accept: list[str] = []
    policy: TutoringPolicy = "open"
    pages: list[int] = []


class _PolicyBody(msgspec.Struct, forbid_unknown_fields=True):
    mode: TutoringPolicy
    hint_only_from: str | None = None
    hint_only_until: str | None = None


def _problem_id(request: Request) -> str:
    problem_id = str(request.path_params["problem_id"])
    if len(problem_id) > _MAX_ID_CHARS or not _PROBLEM_ID.match(problem_id):
        raise Refused(400, "bad_request", "problem ids are 1-64 letters, digits and _.:-")
    return problem_id


async def _course_exists(request: Request, course: str) -> None:
    """Refuse a course the tutor does not know either: one with no documents and not the demo."""
    retriever = runtime_of(request).courses.retriever
    if course in retriever.courses():
        return
    # A course made on another pod a moment ago: this pod's list may not have it yet.
    try:
        version = await retriever.index_version(course)
    except Exception as exc:  # the vector store's client raises errors of its own
        log.warning("problems.courses_unavailable", error=type(exc).__name__)
        raise Refused(503, "unavailable", "the course list is unavailable; try again") from None
    if not version:
        raise Refused(404, "course_unknown", f"no course {course!r}")


def _reader(request: Request) -> tuple[Principal, str]:
    """The caller and the course, when the caller may read the course."""
    who = caller(request)
    course = course_param(request)
    if not who.may_use(course):
        raise Refused(403, "course_forbidden", f"your token does not grant course {course!r}")
    return who, course


def _editor(request: Request, what: str) -> tuple[Principal, str]:
    """The caller and the course, when the caller may change the course's ``what``."""
    who = caller(request)
    course = course_param(request)
    if who.role not in EDITORS:
        raise Refused(403, "role_forbidden", f"only instructors and admins change {what}")
    if not who.may_use(course):
        raise Refused(403, "course_forbidden", f"your token does not grant course {course!r}")
    return who, course


def _sees_answers(who: Principal, course: str) -> bool:
    return who.role in EDITORS and who.may_use(course)


async def _body(request: Request, max_bytes: int) -> bytes:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Refused(415, "unsupported_media_type", "send the body as application/json")
    body = await request.body()
    if len(body) > max_bytes:
        raise Refused(413, "too_large", f"the body is over {max_bytes} bytes")
    return body


def _decode(body: bytes, kind: type[Any], shape: str) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise Refused(400, "bad_request", f"{exc}; send {shape}") from None
    except msgspec.DecodeError:
        raise Refused(400, "bad_json", "the body is not valid JSON") from None


def _text(name: str, value: str, max_chars: int) -> None:
    if "\x00" in value:
        raise Refused(400, "bad_request", f"{name} must not hold a NUL character")
    if len(value) > max_chars:
        raise Refused(400, "too_long", f"{name} is limited to {max_chars} characters")


def _problem(body: _ProblemBody, max_page: int) -> _ProblemBody:
    """The body checked against the limits, pages sorted without repeats."""
    _text("statement", body.statement, MAX_STATEMENT_CHARS)
    if not body.statement.strip():
        raise Refused(400, "bad_request", "statement must hold the problem's text")
    _text("answer", body.answer, MAX_ANSWER_CHARS)
    if not body.answer.strip():
        raise Refused(400, "answer_empty", "answer must hold the answer, not only white space")
    if len(body.accept) > MAX_ACCEPT_FORMS:
        raise Refused(400, "too_long", f"accept is limited to {MAX_ACCEPT_FORMS} forms")
    for form in body.accept:
        _text("each form in accept", form, MAX_ANSWER_CHARS)
        if not form.strip():
            raise Refused(400, "bad_request", "a form in accept must not be empty")
    if len(body.pages) > MAX_PAGES:
        raise Refused(400, "too_long", f"pages is limited to {MAX_PAGES} pages")
    if any(not 1 <= page <= max_page for page in body.pages):
        raise Refused(400, "bad_request", f"pages are page numbers from 1 to {max_page}")
    return msgspec.structs.replace(body, pages=sorted(set(body.pages)))


def _view(problem: ProblemRecord, answers: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": problem.id,
        "course": problem.course,
        "statement": problem.statement,
        "policy": problem.policy,
        "pages": problem.pages,
    }
    if answers:
        view |= {
            "answer": problem.answer,
            "accept": problem.accept,
            "updated_at": problem.updated_at,
            "updated_by": problem.updated_by,
        }
    return view


async def put_problem(request: Request) -> Response:
    """Create or replace a problem: 201 when created, 200 when replaced."""
    try:
        who, course = _editor(request, "problems")
        problem_id = _problem_id(request)
        await _course_exists(request, course)
        shape = '{"statement", "answer", "accept"?, "policy"?, "pages"?}'
        body = _decode(await _body(request, _MAX_PROBLEM_BYTES), _ProblemBody, shape)
        rt = runtime_of(request)
        checked = _problem(body, rt.settings.knowledge.max_pages)
        store = rt.store
        if (
            await store.get_problem(course, problem_id) is None
            and await store.count_problems(course) >= MAX_PROBLEMS_PER_COURSE
        ):
            raise Refused(
                409, "rejected", f"a course holds at most {MAX_PROBLEMS_PER_COURSE} problems"
            )
    except Refused as refused:
        return refused.response
    record = ProblemRecord(
        course=course,
        id=problem_id,
        statement=checked.statement,
        answer=checked.answer,
        accept=checked.accept,
        policy=checked.policy,
        pages=checked.pages,
        updated_at=time.time(),
        updated_by=who.user,
    )
    created = await store.put_problem(record)
    log.info("problems.put", course=course, problem=problem_id, user=who.user, created=created)
    return JSONResponse(_view(record, answers=True), status_code=201 if created else 200)


async def list_problems(request: Request) -> Response:
    """The course's problems by id; answer keys only for its instructors and admins."""
    try:
        who, course = _reader(request)
        await _course_exists(request, course)
    except Refused as refused:
        return refused.response
    problems = await runtime_of(request).store.list_problems(course)
    answers = _sees_answers(who, course)
    return JSONResponse({"course": course, "problems": [_view(p, answers) for p in problems]})


async def get_problem(request: Request) -> Response:
    """One problem; its answer key only for the course's instructors and admins."""
    try:
        who, course = _reader(request)
        problem_id = _problem_id(request)
        await _course_exists(request, course)
        problem = await runtime_of(request).store.get_problem(course, problem_id)
        if problem is None:
            raise Refused(404, "problem_unknown", f"no problem {problem_id!r} in this course")
    except Refused as refused:
        return refused.response
    return JSONResponse(_view(problem, _sees_answers(who, course)))


async def delete_problem(request: Request) -> Response:
    """Delete a problem and every learner's progress on it."""
    try:
        who, course = _editor(request, "problems")
        problem_id = _problem_id(request)
        await _course_exists(request, course)
        if not await runtime_of(request).store.delete_problem(course, problem_id):
            raise Refused(404, "problem_unknown", f"no problem {problem_id!r} in this course")
    except Refused as refused:
        return refused.response
    log.info("problems.deleted", course=course, problem=problem_id, user=who.user)
    return JSONResponse({"id": problem_id, "course": course, "status": "deleted"})


def _epoch(name: str, value: str | None) -> float | None:
    """ISO-8601 time with a time zone, as epoch seconds."""
    if value is None:
        return None
    message = f"{name} must be an ISO-8601 time with a time zone, like 2026-06-01T09:00:00Z"
    if len(value) > _MAX_TIME_CHARS:
        raise Refused(400, "bad_request", message)
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise Refused(400, "bad_request", message)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise Refused(400, "bad_request", message) from None


def _iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def _policy_view(policy: CoursePolicy) -> dict[str, Any]:
    return {
        "course": policy.course,
        "mode": policy.mode,
        "hint_only_from": _iso(policy.hint_only_from),
        "hint_only_until": _iso(policy.hint_only_until),
        "hint_only_now": policy.hint_only_at(time.time()),
    }


async def put_policy(request: Request) -> Response:
    """Set the course's tutoring policy: ``open``, or ``hint_only`` in an optional window."""
    try:
        who, course = _editor(request, "the course policy")
        await _course_exists(request, course)
        shape = '{"mode": "open"|"hint_only", "hint_only_from"?, "hint_only_until"?}'
        body = _decode(await _body(request, _MAX_POLICY_BYTES), _PolicyBody, shape)
        start = _epoch("hint_only_from", body.hint_only_from)
        end = _epoch("hint_only_until", body.hint_only_until)
        if start is not None and end is not None and end <= start:
            raise Refused(400, "bad_window", "hint_only_until must come after hint_only_from")
    except Refused as refused:
        return refused.response
    policy = CoursePolicy(course=course, mode=body.mode, hint_only_from=start, hint_only_until=end)
    await runtime_of(request).store.put_policy(policy)
    log.info("problems.policy", course=course, mode=policy.mode, user=who.user)
    return JSONResponse(_policy_view(policy))


async def get_policy(request: Request) -> Response:
    """The course's tutoring policy and whether hints only hold now."""
    try:
        _, course = _reader(request)
        await _course_exists(request, course)
    except Refused as refused:
        return refused.response
    return JSONResponse(_policy_view(await runtime_of(request).store.get_policy(course)))
