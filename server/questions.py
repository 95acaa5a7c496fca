"""HTTP routes for a course's shared questions: what typing predictions offer its learners.

    GET    /courses/{course}/questions   the shared questions, most asked first
    DELETE /courses/{course}/questions   JSON ``{"question": …}``: stop sharing it, for good

A question a learner typed is shared with the course's other learners only
when enough of them asked it alike and it holds no personal data (see
:mod:`cache.popular`); these routes let the course's instructors see those
questions and remove any. Both need role ``instructor`` or ``admin`` and the
course in the token's ``courses`` claim (admins: any course). Errors are JSON
``{"error": code, "message": …}``.
"""

from __future__ import annotations

import json

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.auth import Principal
from core.redis_link import UNREACHABLE
from core.text import normalise
from server._http import Refused, caller, course_param, json_error, runtime_of

log = structlog.get_logger("livetutor.questions")
EDITORS = ("instructor", "admin")
_DEFAULT_LIMIT = 200
_MAX_LIMIT = 2_000
_MAX_JSON_BYTES = 8_192


def _instructor_course(request: Request) -> tuple[Principal, str]:
    """The caller and the course, when the caller may manage the course's questions."""
    who = caller(request)
    course = course_param(request)
    if who.role not in EDITORS:
        raise Refused(403, "role_forbidden", "only instructors and admins manage shared questions")
    if not who.may_use(course):
        raise Refused(403, "course_forbidden", f"your token does not grant course {course!r}")
    return who, course


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(_DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        raise Refused(400, "bad_request", f"limit must be 1 to {_MAX_LIMIT}")
    return int(raw)


async def _question(request: Request) -> str:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Refused(415, "unsupported_media_type", 'send JSON {"question": "…"}')
    body = await request.body()
    if len(body) > _MAX_JSON_BYTES:
        raise Refused(413, "too_large", "request body too large")
    try:
        payload = json.loads(body)
    except ValueError:
        raise Refused(400, "bad_json", "the body is not valid JSON") from None
    question = payload.get("question") if isinstance(payload, dict) else None
    if not isinstance(question, str) or not normalise(question):
        raise Refused(400, "bad_request", 'send {"question": "…"} with the question\'s text')
    return question


_UNAVAILABLE = (503, "unavailable", "the question counts are unavailable; try again")


async def list_questions(request: Request) -> Response:
    """The course's shared questions with how often each was asked, most asked first."""
    try:
        _, course = _instructor_course(request)
        limit = _limit(request)
    except Refused as refused:
        return refused.response
    try:
        top = await runtime_of(request).popular.top(course, limit)
    except UNREACHABLE:
        return json_error(*_UNAVAILABLE)
    questions = [{"question": text, "asked": count} for text, count in top]
    return JSONResponse({"course": course, "questions": questions})


async def remove_question(request: Request) -> Response:
    """Stop offering a question to the course's learners; asking it again does not bring it back."""
    try:
        who, course = _instructor_course(request)
        question = await _question(request)
    except Refused as refused:
        return refused.response
    rt = runtime_of(request)
    try:
        removed = await rt.popular.remove(course, question)
    except UNREACHABLE:
        return json_error(*_UNAVAILABLE)
    if not removed:
        return json_error(409, "rejected", "the course's list of removed questions is full")
    rt.courses.forget_questions(course)
    log.info("questions.removed", course=course, user=who.user)
    return JSONResponse({"course": course, "question": question, "status": "removed"})
