"""WebSocket protocol v1: frames, validation, error codes and close codes.

No I/O here: the endpoint hands raw text to :func:`parse_client_frame` and
sends what :func:`encode` returns. ``docs/protocol.md`` is the contract;
this module is its executable form, and the only place a server frame is
built: every other module calls the builders below (:func:`welcome`,
:func:`stream_start`, :func:`delta`, :func:`stream_end`, :func:`error`,
:func:`session`, :func:`pong`, :func:`reconnect`, :func:`predictions`,
:func:`document_progress`) and never patches what they return.

Every client frame may carry ``id`` (a string the client chooses, at most 64
characters); an ``error`` caused by a frame echoes it as ``ref``. ``ask``
requires ``id``.

Exceptions::

    FrameError(code, message, ref)   a frame the server cannot act on
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from core.ids import IDENT_PATTERN

PROTOCOL_VERSION: Final = 1
SUBPROTOCOL: Final = "livetutor.v1"
BEARER_SUBPROTOCOL_PREFIX: Final = "bearer."


class CloseCode:
    """WebSocket close codes the server uses."""

    NORMAL: Final = 1000
    GOING_AWAY: Final = 1001
    UNSUPPORTED_DATA: Final = 1003  # binary frame
    POLICY_VIOLATION: Final = 1008  # slow consumer: outbound queue full
    MESSAGE_TOO_BIG: Final = 1009  # frame over max_frame_bytes
    INTERNAL_ERROR: Final = 1011
    SERVICE_RESTART: Final = 1012  # pod draining; reconnect to another pod
    IDLE_TIMEOUT: Final = 4408  # no frame from the client for idle_timeout_s


class ErrorCode:
    """Stable ``error.code`` values."""

    BAD_JSON: Final = "bad_json"
    UNKNOWN_TYPE: Final = "unknown_type"
    INVALID_FRAME: Final = "invalid_frame"
    TOO_LONG: Final = "too_long"
    RATE_LIMITED: Final = "rate_limited"
    TOO_MANY_STREAMS: Final = "too_many_streams"
    COURSE_FORBIDDEN: Final = "course_forbidden"
    COURSE_UNKNOWN: Final = "course_unknown"
    SESSION_FORBIDDEN: Final = "session_forbidden"
    SESSION_COURSE: Final = "session_course"
    PROBLEM_UNKNOWN: Final = "problem_unknown"
    STREAM_UNKNOWN: Final = "stream_unknown"
    LLM_UNAVAILABLE: Final = "llm_unavailable"
    STREAM_RESYNC: Final = "stream_resync"
    UNAVAILABLE: Final = "unavailable"
    DRAINING: Final = "draining"
    INTERNAL: Final = "internal"


class FrameError(Exception):
    """A client frame the server cannot act on; answered with an ``error`` frame."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


# Identifiers chosen by clients: short, URL-safe.
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=IDENT_PATTERN)]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Mode = Literal["explain", "hint"]


class _ClientFrame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    id: Ref | None = None


class Ask(_ClientFrame, tag="ask", kw_only=True):
    """Ask a question in a session; ``session`` omitted starts a new one."""

    id: Ref
    course: Ident
    text: str
    session: Ident | None = None
    mode: Mode = "explain"
    # A problem of the course (PUT /courses/{course}/problems/{id}): hints walk its ladder.
    problem: Ident | None = None


class Attempt(_ClientFrame, tag="attempt", kw_only=True):
    """The learner's answer to a course problem; answered with ``feedback``."""

    id: Ref
    course: Ident
    problem: Ident
    text: str


class Cancel(_ClientFrame, tag="cancel", kw_only=True):
    """Stop a running stream."""

    stream: Ident


class Resume(_ClientFrame, tag="resume", kw_only=True):
    """Replay a stream after ``after`` and follow it live."""

    stream: Ident
    after: Annotated[int, msgspec.Meta(ge=0)] = 0


class Open(_ClientFrame, tag="open", kw_only=True):
    """Join a session (another tab or device)."""

    session: Ident


class Typing(_ClientFrame, tag="typing", kw_only=True):
    """The learner is typing; the server may answer with predictions."""

    session: Ident | None = None
    course: Ident
    text: str


class Ping(_ClientFrame, tag="ping", kw_only=True):
    """Liveness probe; answered with ``pong``."""


ClientFrame = Ask | Attempt | Cancel | Resume | Open | Typing | Ping
CLIENT_TYPES: Final = ("ask", "attempt", "cancel", "resume", "open", "typing", "ping")
SERVER_TYPES: Final = (
    "welcome",
    "stream.start",
    "delta",
    "stream.end",
    "error",
    "session",
    "pong",
    "reconnect",
    "predictions",
    "document.progress",
    "feedback",
)

_decoder = msgspec.json.Decoder(ClientFrame)
_loose = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def parse_client_frame(text: str, *, max_text_chars: int) -> ClientFrame:
    """Decode and validate one client frame, or raise :class:`FrameError`."""
    try:
        return _check_lengths(_decoder.decode(text), max_text_chars)
    except msgspec.ValidationError as exc:
        raise _explain(text, exc) from None
    except msgspec.DecodeError:
        raise FrameError(ErrorCode.BAD_JSON, "frame is not valid JSON") from None
    except RecursionError:
        raise FrameError(ErrorCode.INVALID_FRAME, "frame is nested too deeply") from None


def _check_lengths(frame: ClientFrame, max_text_chars: int) -> ClientFrame:
    if isinstance(frame, Ask | Typing | Attempt):
        if len(frame.text) > max_text_chars:
            raise FrameError(
                ErrorCode.TOO_LONG,
                f"text is {len(frame.text)} characters; the limit is {max_text_chars}",
                frame.id,
            )
        if isinstance(frame, Ask | Attempt) and not frame.text.strip():
            raise FrameError(ErrorCode.INVALID_FRAME, "text must not be empty", frame.id)
        if "\x00" in frame.text:
            raise FrameError(ErrorCode.INVALID_FRAME, "text must not contain NUL", frame.id)
    return frame


def _explain(text: str, exc: msgspec.ValidationError) -> FrameError:
    """Turn a schema failure into the most useful error code, keeping the client's ref."""
    try:
        obj = _loose.decode(text)
    except msgspec.DecodeError:
        return FrameError(ErrorCode.BAD_JSON, "frame is not valid JSON")
    except RecursionError:
        return FrameError(ErrorCode.INVALID_FRAME, "frame is nested too deeply")
    if not isinstance(obj, dict):
        return FrameError(ErrorCode.INVALID_FRAME, "a frame must be a JSON object")
    raw_ref = obj.get("id")
    ref = raw_ref if isinstance(raw_ref, str) and 0 < len(raw_ref) <= 64 else None
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        shown = kind if isinstance(kind, str) and len(kind) <= 32 else "?"
        return FrameError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown frame type {shown!r}; expected one of {', '.join(CLIENT_TYPES)}",
            ref,
        )
    return FrameError(ErrorCode.INVALID_FRAME, f"invalid {kind} frame: {exc}", ref)


def encode(frame: dict[str, Any]) -> str:
    """Serialise a server frame to the text of one WebSocket message."""
    return _encoder.encode(frame).decode()


# Server frames are plain dicts built by these helpers, so the hot path
# (one delta per flush) costs a dict and one encode. An optional field given
# as None is left out of the frame, except where the table in
# docs/protocol.md lists it as always present (``ref``, ``message``).


def welcome(connection: str, pod: str, user: str, limits: dict[str, Any]) -> dict[str, Any]:
    """First frame on every connection."""
    return {
        "type": "welcome",
        "connection": connection,
        "pod": pod,
        "user": user,
        "protocol": PROTOCOL_VERSION,
        "limits": limits,
    }


def error(
    code: str, message: str, ref: str | None = None, *, retry_after_ms: int | None = None
) -> dict[str, Any]:
    """An ``error`` frame; ``ref`` echoes the ``id`` of the frame it answers.

    ``retry_after_ms`` (``rate_limited`` only) says when to ask again.
    """
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message, "ref": ref}
    if retry_after_ms is not None:
        frame["retry_after_ms"] = retry_after_ms
    return frame


def stream_start(
    stream: str,
    ask: str,
    session: str,
    course: str,
    mode: str,
    *,
    text: str | None = None,
    hint_level: int | None = None,
    problem: str | None = None,
    hint_only: bool = False,
) -> dict[str, Any]:
    """A stream opened for ``ask``; ``text`` is the question, so other tabs can show it.

    A hint carries its rung of the ladder (``hint_level``, 1 to 4) and the problem it is
    about; ``hint_only`` says an ``explain`` ask was answered as a hint by course policy.
    """
    frame: dict[str, Any] = {
        "type": "stream.start",
        "stream": stream,
        "ask": ask,
        "session": session,
        "course": course,
        "mode": mode,
    }
    if text is not None:
        frame["text"] = text
    if hint_level is not None:
        frame["hint_level"] = hint_level
    if problem is not None:
        frame["problem"] = problem
    if hint_only:
        frame["hint_only"] = True
    return frame


def delta(stream: str, seq: int, text: str) -> dict[str, Any]:
    """A piece of answer text; ``seq`` counts deltas from 1 per stream."""
    return {"type": "delta", "stream": stream, "seq": seq, "text": text}


def stream_end(
    stream: str,
    seq: int,
    reason: str,
    sources: list[dict[str, Any]],
    *,
    cached: bool,
    model: str,
    fallback: bool = False,
    message: str | None = None,
    taken_over: bool | None = None,
    hint_level: int | None = None,
    hint_only: bool = False,
    withheld: list[int] | None = None,
) -> dict[str, Any]:
    """The last frame of a stream; ``seq`` is the last delta's seq (0 if none).

    ``taken_over`` says whether another pod finished the answer from the journal. A hint
    repeats its ``hint_level`` and ``hint_only``, and lists in ``withheld`` the seqs of
    the deltas that stand in for sentences the guard kept back.
    """
    frame: dict[str, Any] = {
        "type": "stream.end",
        "stream": stream,
        "seq": seq,
        "reason": reason,
        "sources": sources,
        "cached": cached,
        "model": model,
        "fallback": fallback,
        "message": message,
    }
    if taken_over is not None:
        frame["taken_over"] = taken_over
    if hint_level is not None:
        frame["hint_level"] = hint_level
        frame["withheld"] = list(withheld or [])
    if hint_only:
        frame["hint_only"] = True
    return frame


def session(
    ref: str | None,
    session: str,
    course: str,
    title: str,
    messages: list[dict[str, Any]],
    streams: list[dict[str, Any]],
    presence: list[dict[str, str]],
) -> dict[str, Any]:
    """Answer to ``open``: the session's last messages, running answers and live connections.

    ``streams`` holds :func:`running_stream` items.
    """
    return {
        "type": "session",
        "ref": ref,
        "session": session,
        "course": course,
        "title": title,
        "messages": messages,
        "streams": streams,
        "presence": presence,
    }


def running_stream(stream: str, ask: str, seq: int, text: str) -> dict[str, Any]:
    """A running answer in a ``session`` frame: its ``text`` up to ``seq``."""
    return {"stream": stream, "ask": ask, "seq": seq, "text": text}


def predictions(text: str, items: list[str], ref: str | None = None) -> dict[str, Any]:
    """Answer to ``typing``: up to five completions or related topics for ``text``."""
    return {"type": "predictions", "text": text, "items": items, "ref": ref}


def document_progress(
    document: str, course: str, status: str, progress: float, reason: str | None = None
) -> dict[str, Any]:
    """Indexing progress of a course document (``progress`` from 0 to 1, to 3 decimals).

    ``reason`` (why it failed) is left out when empty.
    """
    frame: dict[str, Any] = {
        "type": "document.progress",
        "document": document,
        "course": course,
        "status": status,
        "progress": round(progress, 3),
    }
    if reason:
        frame["reason"] = reason
    return frame


def feedback(ref: str, problem: str, *, correct: bool, message: str) -> dict[str, Any]:
    """The grade of an ``attempt``: ``correct`` unlocks the worked solution for this learner."""
    return {
        "type": "feedback",
        "ref": ref,
        "problem": problem,
        "correct": correct,
        "message": message,
    }


def pong(ref: str | None) -> dict[str, Any]:
    """Answer to ``ping``."""
    return {"type": "pong", "ref": ref}


def reconnect(reason: str, after_ms: int) -> dict[str, Any]:
    """Sent when the pod drains: reconnect (to another pod) and resume."""
    return {"type": "reconnect", "reason": reason, "after_ms": after_ms}
