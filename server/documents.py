"""HTTP routes for course documents.

    POST   /courses/{course}/documents   multipart ``file``, or JSON ``{"url": …}``
    GET    /courses/{course}/documents   the course's documents
    GET    /documents/{id}               one document: status, progress, reason
    GET    /documents/{id}/file          the PDF itself, inline, with byte ranges
    DELETE /documents/{id}               remove a document and its chunks

Adding and deleting need role ``instructor`` or ``admin`` and the course in the
token's ``courses`` claim (admins: any course); reading needs the course. Errors
are JSON ``{"error": code, "message": …}``. The bundled demo course's PDF is
document ``demo`` for the file route only (it has no record to show or delete).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from functools import cache
from typing import Any
from urllib.parse import quote

import structlog
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from werkzeug.http import parse_range_header

from core.auth import Principal
from core.errors import DocumentRejected, KnowledgeError
from core.ids import is_course_id
from knowledge.demo_course import DEMO_COURSE, DEMO_DOCUMENT_ID, DEMO_FILENAME, demo_pdf
from knowledge.pdf import looks_like_pdf
from knowledge.vectors import DocumentRecord
from server._http import Refused, caller, course_param, runtime_of
from server.middleware import BodyTooLarge

log = structlog.get_logger("livetutor.documents")
_DOC_ID = re.compile(r"^[0-9a-f]{32}\Z")
_MAX_URL_CHARS = 2048
_MAX_JSON_BYTES = 8192
# Multipart framing around the file.
_FORM_SLACK_BYTES = 64 * 1024
EDITORS = ("instructor", "admin")
# A course file is private: no shared cache (proxy, CDN) may keep it, and the browser
# fetches it afresh each time the viewer opens it.
_FILE_HEADERS = {
    "cache-control": "private, no-store",
    "accept-ranges": "bytes",
    "x-content-type-options": "nosniff",
}


def _may_edit(who: Principal, course: str) -> None:
    if who.role not in EDITORS:
        raise Refused(403, "role_forbidden", "only instructors and admins can change documents")
    if not who.may_use(course):
        raise Refused(403, "course_forbidden", f"your token does not grant course {course!r}")


async def _record(request: Request, who: Principal) -> DocumentRecord:
    doc_id = str(request.path_params["doc_id"])
    record = None
    if _DOC_ID.match(doc_id):
        record = await asyncio.to_thread(runtime_of(request).courses.ingest.kb.get_document, doc_id)
    # A document of a course the caller cannot see does not exist for them.
    if record is None or not who.may_use(record.course):
        raise Refused(404, "document_unknown", "no such document")
    return record


async def _session(request: Request, who: Principal, given: Any) -> str:
    """The session to send progress to: only one of the caller's own."""
    session = given or request.query_params.get("session") or ""
    if not session:
        return ""
    if not isinstance(session, str) or not is_course_id(session):
        raise Refused(400, "bad_request", "session must be a session id")
    record = await runtime_of(request).store.get_session(session)
    if record is None or record.user_id != who.user:
        raise Refused(403, "session_forbidden", "no such session of yours")
    return session


def upload_body_bytes(max_upload_bytes: int) -> int:
    """The largest multipart body an upload may send: the file and its form framing.

    :class:`server.middleware.BodyLimit` holds uploads to it, refusing a larger
    ``Content-Length`` before reading and cutting a chunked body off at it.
    """
    return max_upload_bytes + _FORM_SLACK_BYTES


async def _read_upload(request: Request, max_bytes: int) -> tuple[str, bytes, Any]:
    try:
        form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
    except BodyTooLarge:
        raise
    except Exception as exc:
        raise Refused(400, "bad_request", f"unreadable multipart form: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Refused(400, "bad_request", "send the PDF in the multipart field 'file'")
        data = await upload.read(max_bytes + 1)
        return upload.filename or "document.pdf", data, form.get("session")
    finally:
        await form.close()


async def add_document(request: Request) -> Response:
    """Upload a PDF or register a URL to prefetch; the course is created if new."""
    try:
        who = caller(request)
        course = course_param(request)
        _may_edit(who, course)
        rt = runtime_of(request)
        limits = rt.settings.knowledge
        ingest = rt.courses.ingest
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            filename, data, given_session = await _read_upload(request, limits.max_upload_bytes)
            if len(data) > limits.max_upload_bytes:
                raise Refused(
                    413, "too_large", f"files are limited to {limits.max_upload_bytes} bytes"
                )
            if not looks_like_pdf(data):
                raise Refused(415, "not_pdf", "the file is not a PDF (no %PDF- header)")
            session = await _session(request, who, given_session)
            record, created = await asyncio.to_thread(
                ingest.add_upload, course, filename, data, user=who.user, session=session
            )
            source = "upload"
        elif kind == "application/json":
            body = await request.body()
            if len(body) > _MAX_JSON_BYTES:
                raise Refused(413, "too_large", "request body too large")
            try:
                payload = json.loads(body)
            except ValueError:
                raise Refused(400, "bad_json", "the body is not valid JSON") from None
            url = payload.get("url") if isinstance(payload, dict) else None
            if not isinstance(url, str) or not re.match(r"^https?://", url, re.IGNORECASE):
                raise Refused(400, "bad_request", 'send {"url": "http(s)://…"}')
            if len(url) > _MAX_URL_CHARS:
                raise Refused(
                    400, "bad_request", f"URLs are limited to {_MAX_URL_CHARS} characters"
                )
            session = await _session(request, who, payload.get("session"))
            record = await asyncio.to_thread(
                ingest.add_url, course, url, user=who.user, session=session
            )
            created, source = True, "url"
        else:
            raise Refused(
                415, "unsupported_media_type", "send multipart/form-data or application/json"
            )
    except Refused as refused:
        return refused.response
    except DocumentRejected as exc:
        return JSONResponse({"error": "rejected", "message": exc.reason}, status_code=409)
    except KnowledgeError as exc:
        log.warning("documents.unavailable", error=type(exc).__name__)
        return JSONResponse(
            {"error": "unavailable", "message": "document storage is unavailable; try again"},
            status_code=503,
        )
    rt.courses.retriever.add_course(course)
    if not created:
        return JSONResponse(
            {"id": record.id, "status": record.status, "course": course, "duplicate": True}
        )
    rt.metrics.documents_uploaded.labels(source).inc()
    rt.courses.jobs.submit("index_document" if source == "upload" else "prefetch_pdf", record.id)
    log.info("documents.added", document=record.id, course=course, source=source, user=who.user)
    return JSONResponse({"id": record.id, "status": "queued", "course": course}, status_code=202)


async def list_documents(request: Request) -> Response:
    """The course's documents, oldest first."""
    try:
        who = caller(request)
        course = course_param(request)
        if not who.may_use(course):
            raise Refused(403, "course_forbidden", f"your token does not grant course {course!r}")
    except Refused as refused:
        return refused.response
    kb = runtime_of(request).courses.ingest.kb
    records = await asyncio.to_thread(kb.documents, course)
    return JSONResponse({"course": course, "documents": [r.view() for r in records]})


async def get_document(request: Request) -> Response:
    """One document's status."""
    try:
        record = await _record(request, caller(request))
    except Refused as refused:
        return refused.response
    return JSONResponse(record.view())


async def delete_document(request: Request) -> Response:
    """Remove a document, its chunks and its file."""
    try:
        who = caller(request)
        record = await _record(request, who)
        _may_edit(who, record.course)
    except Refused as refused:
        return refused.response
    rt = runtime_of(request)
    try:
        await asyncio.to_thread(rt.courses.ingest.delete, record.id)
    except KnowledgeError:
        return JSONResponse(
            {"error": "unavailable", "message": "document storage is unavailable; try again"},
            status_code=503,
        )
    rt.courses.retriever.forget_version(record.course)
    log.info("documents.deleted", document=record.id, course=record.course, user=who.user)
    return JSONResponse({"id": record.id, "status": "deleted", "course": record.course})


async def document_file(request: Request) -> Response:
    """The document's PDF, shown inline; one byte range (``Range: bytes=…``) when asked."""
    try:
        who = caller(request)
        if request.path_params["doc_id"] == DEMO_DOCUMENT_ID and who.may_use(DEMO_COURSE):
            data, etag, filename = _demo_file()
        else:
            record = await _record(request, who)
            if not record.blob:
                raise Refused(404, "file_unknown", "the document's file has not been fetched (yet)")
            blobs = runtime_of(request).courses.ingest.blobs
            data = await asyncio.to_thread(blobs.get, record.blob)
            etag = record.sha256 or hashlib.sha256(data).hexdigest()
            filename = _pdf_name(record.title)
    except Refused as refused:
        return refused.response
    except KnowledgeError as exc:
        log.warning("documents.file_unavailable", error=type(exc).__name__)
        return JSONResponse(
            {"error": "unavailable", "message": "document storage is unavailable; try again"},
            status_code=503,
        )
    headers = {**_FILE_HEADERS, "etag": f'"{etag}"', "content-disposition": _inline(filename)}
    try:
        span = _byte_range(request, len(data), etag)
    except _Unsatisfiable:
        return JSONResponse(
            {
                "error": "range_not_satisfiable",
                "message": f"the file has {len(data)} bytes; no byte of the range is in it",
            },
            status_code=416,
            headers={"content-range": f"bytes */{len(data)}"},
        )
    if span is None:
        return Response(data, media_type="application/pdf", headers=headers)
    start, stop = span
    headers["content-range"] = f"bytes {start}-{stop - 1}/{len(data)}"
    return Response(data[start:stop], 206, headers, media_type="application/pdf")


@cache
def _demo_file() -> tuple[bytes, str, str]:
    data = demo_pdf()
    return data, hashlib.sha256(data).hexdigest(), DEMO_FILENAME


class _Unsatisfiable(Exception):
    """No byte of the asked range is in the file."""


def _byte_range(request: Request, size: int, etag: str) -> tuple[int, int] | None:
    """The one byte range to send as ``(start, stop)``, or ``None`` for the whole file.

    A malformed ``Range``, another unit, several ranges (no ``multipart/byteranges``
    here) or an ``If-Range`` that names another version get the whole file, as
    RFC 9110 allows; a range that starts past the end raises :class:`_Unsatisfiable`.
    """
    header = request.headers.get("range")
    if not header:
        return None
    # If-Range compares strongly; no Last-Modified is sent, so a date never matches.
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != f'"{etag}"':
        return None
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    span = parsed.range_for_length(size)
    if span is not None:
        return span
    # A suffix longer than the file means the whole file (RFC 9110, 14.1.2).
    if parsed.ranges[0][0] < 0 and size > 0:
        return 0, size
    raise _Unsatisfiable


def _pdf_name(title: str) -> str:
    name = " ".join(title.split()) or "document"
    return name if name.lower().endswith(".pdf") else f"{name}.pdf"


def _inline(filename: str) -> str:
    """``inline`` with the name as ASCII and, when it is not ASCII, as UTF-8 too (RFC 6266)."""
    ascii_name = re.sub(r'[^\x20-\x7e]|["\\]', "_", filename)
    if ascii_name == filename:
        return f'inline; filename="{filename}"'
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
