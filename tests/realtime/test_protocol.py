"""Client frame parsing and server frame encoding of protocol v1."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from realtime import protocol as p
from realtime.protocol import (
    CLIENT_TYPES,
    Ask,
    Cancel,
    CloseCode,
    ErrorCode,
    FrameError,
    Open,
    Ping,
    Resume,
    Typing,
    parse_client_frame,
)

MAX_TEXT = 100
ERROR_CODES = {value for name, value in vars(ErrorCode).items() if name.isupper()}
FRAME_CLASSES = (Ask, Cancel, Resume, Open, Typing, Ping)


def parse(frame: Any) -> p.ClientFrame:
    """Parse a frame given as a Python value (or as raw text)."""
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return parse_client_frame(text, max_text_chars=MAX_TEXT)


def parse_error(frame: Any) -> FrameError:
    """The FrameError that parsing ``frame`` raises."""
    with pytest.raises(FrameError) as info:
        parse(frame)
    return info.value


def ask(**fields: Any) -> dict[str, Any]:
    """A valid ask frame, with ``fields`` changed."""
    return {"type": "ask", "id": "q1", "course": "demo", "text": "What is validity?", **fields}


# -- valid frames -------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            {"type": "ask", "id": "q1", "course": "demo", "text": "Why?"},
            Ask(id="q1", course="demo", text="Why?"),
        ),
        (
            {
                "type": "ask",
                "id": "q2",
                "course": "demo",
                "text": "Why?",
                "session": "s-1",
                "mode": "hint",
            },
            Ask(id="q2", course="demo", text="Why?", session="s-1", mode="hint"),
        ),
        ({"type": "cancel", "stream": "st-1"}, Cancel(stream="st-1")),
        ({"type": "cancel", "id": "c1", "stream": "st-1"}, Cancel(id="c1", stream="st-1")),
        ({"type": "resume", "stream": "st-1", "after": 7}, Resume(stream="st-1", after=7)),
        ({"type": "open", "session": "s-1"}, Open(session="s-1")),
        (
            {"type": "typing", "course": "demo", "text": "Is a"},
            Typing(course="demo", text="Is a"),
        ),
        (
            {"type": "typing", "session": "s-1", "course": "demo", "text": "Is a"},
            Typing(session="s-1", course="demo", text="Is a"),
        ),
        ({"type": "ping"}, Ping()),
        ({"type": "ping", "id": "p1"}, Ping(id="p1")),
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else "",
)
def test_parses_valid_frame(frame: dict[str, Any], expected: p.ClientFrame) -> None:
    """Each valid client frame type decodes to its frame class with its fields."""
    assert parse(frame) == expected


def test_ask_mode_defaults_to_explain() -> None:
    """An ask without mode is an explain request in a new session."""
    frame = parse(ask())
    assert isinstance(frame, Ask)
    assert frame.mode == "explain"
    assert frame.session is None


def test_resume_after_defaults_to_zero() -> None:
    """A resume without after replays from the start."""
    frame = parse({"type": "resume", "stream": "st-1"})
    assert isinstance(frame, Resume)
    assert frame.after == 0


def test_text_at_the_limit_is_accepted() -> None:
    """Text of exactly max_text_chars characters is allowed."""
    frame = parse(ask(text="x" * MAX_TEXT))
    assert isinstance(frame, Ask)


def test_ident_allows_its_full_alphabet() -> None:
    """Identifiers may use letters, digits and _.:- up to 64 characters."""
    course = "Ab9_.:-" + "z" * 57
    frame = parse(ask(course=course))
    assert isinstance(frame, Ask)
    assert frame.course == course


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize("text", ["not json", "{", "", '{"type": "ping"'])
def test_non_json_is_bad_json(text: str) -> None:
    """Text that is not JSON is refused as bad_json without a ref."""
    err = parse_error(text)
    assert err.code == ErrorCode.BAD_JSON
    assert err.ref is None


@pytest.mark.parametrize("text", ["[1, 2]", '"ping"', "42", "null", "true"])
def test_non_object_json_is_invalid_frame(text: str) -> None:
    """JSON that is not an object is an invalid_frame."""
    err = parse_error(text)
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref is None


def test_unknown_type_lists_types_and_echoes_ref() -> None:
    """An unknown type names every valid type and echoes the frame's id."""
    err = parse_error({"type": "shout", "id": "r1"})
    assert err.code == ErrorCode.UNKNOWN_TYPE
    assert err.ref == "r1"
    for kind in CLIENT_TYPES:
        assert kind in err.message


@pytest.mark.parametrize("kind", [None, 5, ["ask"]], ids=["missing", "int", "list"])
def test_type_not_a_known_string_is_unknown_type(kind: Any) -> None:
    """A missing or non-string type is unknown_type, still echoing the ref."""
    frame: dict[str, Any] = {"id": "r1"}
    if kind is not None:
        frame["type"] = kind
    err = parse_error(frame)
    assert err.code == ErrorCode.UNKNOWN_TYPE
    assert err.ref == "r1"


@pytest.mark.parametrize("field", ["course", "text"])
def test_missing_required_field(field: str) -> None:
    """An ask without a required field is invalid_frame with the ref echoed."""
    frame = ask()
    del frame[field]
    err = parse_error(frame)
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref == "q1"
    assert field in err.message


def test_ask_requires_id() -> None:
    """An ask without id is invalid_frame and has no ref to echo."""
    frame = ask()
    del frame["id"]
    err = parse_error(frame)
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref is None


@pytest.mark.parametrize(
    "frame",
    [
        ask(course=5),
        ask(text=["a"]),
        ask(mode="lecture"),
        {"type": "resume", "id": "q1", "stream": "st-1", "after": "3"},
        {"type": "resume", "id": "q1", "stream": "st-1", "after": -1},
    ],
    ids=["course-int", "text-list", "mode-unknown", "after-string", "after-negative"],
)
def test_wrong_field_type_is_invalid_frame(frame: dict[str, Any]) -> None:
    """A field of the wrong type or out of range is invalid_frame with the ref."""
    err = parse_error(frame)
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref == "q1"


def test_unknown_extra_field_is_invalid_frame() -> None:
    """A field the frame type does not define is refused, naming it."""
    err = parse_error({"type": "ping", "id": "p1", "colour": "red"})
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref == "p1"
    assert "colour" in err.message


@pytest.mark.parametrize("bad_id", ["x" * 65, ""], ids=["65-chars", "empty"])
def test_unusable_id_is_not_echoed(bad_id: str) -> None:
    """An id that is empty or longer than 64 characters is refused and not echoed."""
    err = parse_error(ask(id=bad_id))
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref is None


@pytest.mark.parametrize(
    "course",
    ["../x", "a b", "x" * 65, "", "café", "a/b", "\ndemo"],
    ids=["dotdot-slash", "space", "65-chars", "empty", "non-ascii", "slash", "leading-newline"],
)
def test_ident_pattern_violation(course: str) -> None:
    """Identifiers outside [A-Za-z0-9_.:-]{1,64} are invalid_frame with the ref."""
    err = parse_error(ask(course=course))
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref == "q1"


@pytest.mark.parametrize("field", ["course", "session"])
def test_ident_rejects_trailing_newline(field: str) -> None:
    """An identifier ending in a newline is not URL-safe and is refused."""
    err = parse_error(ask(**{field: "demo\n"}))
    assert err.code == ErrorCode.INVALID_FRAME


@given(
    st.sampled_from(["ask-course", "ask-session", "cancel-stream", "open-session"]),
    st.text("abcXYZ019_.:-", min_size=1, max_size=63),
    st.integers(0, 63),
    st.characters(categories=["Cc"]) | st.sampled_from(["\u2028", "\u2029"]),
)
@example("ask-course", "demo", 4, "\n")
def test_ident_with_a_control_character_is_refused(
    where: str, base: str, at: int, char: str
) -> None:
    """Every identifier field refuses an id with a newline or control character anywhere."""
    at = min(at, len(base))
    ident = base[:at] + char + base[at:]
    kind, field = where.split("-")
    frame = ask(**{field: ident}) if kind == "ask" else {"type": kind, "id": "q1", field: ident}
    err = parse_error(frame)
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref == "q1"


@pytest.mark.parametrize("field", ["session", "stream"])
def test_ident_pattern_applies_to_sessions_and_streams(field: str) -> None:
    """Session and stream ids follow the identifier pattern too."""
    frames = {
        "session": {"type": "open", "id": "o1", "session": "../x"},
        "stream": {"type": "cancel", "id": "o1", "stream": "../x"},
    }
    err = parse_error(frames[field])
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref == "o1"


@pytest.mark.parametrize("kind", ["ask", "typing"])
def test_text_over_limit_is_too_long(kind: str) -> None:
    """Text over max_text_chars is too_long, echoing the ref."""
    frame = {"type": kind, "id": "q9", "course": "demo", "text": "x" * (MAX_TEXT + 1)}
    err = parse_error(frame)
    assert err.code == ErrorCode.TOO_LONG
    assert err.ref == "q9"


@pytest.mark.parametrize("text", ["", " ", "\n\t  "], ids=["empty", "space", "whitespace"])
def test_blank_ask_text_is_invalid(text: str) -> None:
    """An ask whose text is empty or only whitespace is refused."""
    err = parse_error(ask(text=text))
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref == "q1"


@pytest.mark.parametrize("kind", ["ask", "typing"])
def test_nul_in_text_is_invalid(kind: str) -> None:
    """Text containing NUL is refused, echoing the ref."""
    frame = {"type": kind, "id": "q1", "course": "demo", "text": "a\x00b"}
    err = parse_error(frame)
    assert err.code == ErrorCode.INVALID_FRAME
    assert err.ref == "q1"


def test_deeply_nested_json_is_a_frame_error() -> None:
    """Deeply nested JSON well under the frame size limit is refused with a FrameError."""
    depth = 5_000
    text = '{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}"
    assert len(text.encode()) < 65_536
    err = parse_error(text)
    assert err.code in ERROR_CODES


# -- property -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*CLIENT_TYPES, "nope"])},
    optional={
        "id": st.text(max_size=70) | json_values,
        "course": st.sampled_from(["demo", "../x"]) | json_values,
        "session": st.sampled_from(["s-1", ""]) | json_values,
        "stream": st.sampled_from(["st-1", "a b"]) | json_values,
        "text": st.text() | json_values,
        "mode": st.sampled_from(["explain", "hint", "shout"]) | json_values,
        "after": st.integers() | json_values,
    },
).flatmap(lambda d: st.dictionaries(st.text(max_size=8), json_values, max_size=2).map(d.__or__))


def assert_frame_or_frame_error(text: str) -> None:
    """Parsing gives a frame class or a FrameError with a known code, nothing else."""
    try:
        frame = parse_client_frame(text, max_text_chars=MAX_TEXT)
    except FrameError as exc:
        assert exc.code in ERROR_CODES
    else:
        assert isinstance(frame, FRAME_CLASSES)


@settings(deadline=None)
@given(st.text())
def test_arbitrary_text_parses_or_raises_frame_error(text: str) -> None:
    """Any text either parses to a frame or raises FrameError with a known code."""
    assert_frame_or_frame_error(text)


@settings(deadline=None)
@given(json_values)
def test_arbitrary_json_parses_or_raises_frame_error(value: Any) -> None:
    """Any JSON value either parses to a frame or raises FrameError with a known code."""
    assert_frame_or_frame_error(json.dumps(value))


@settings(deadline=None)
@given(frame_like)
def test_frame_shaped_json_parses_or_raises_frame_error(value: dict[str, Any]) -> None:
    """Objects with a type tag and random fields parse or raise FrameError with a known code."""
    assert_frame_or_frame_error(json.dumps(value))


# -- server frames ------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        p.welcome("c-1", "pod-a", "alice", {"max_frame_bytes": 65_536}),
        p.error(ErrorCode.TOO_LONG, "text is too long", "q1"),
        p.error(ErrorCode.INTERNAL, "oops"),
        p.stream_start("st-1", "q1", "s-1", "demo", "hint"),
        p.delta("st-1", 3, "naïve “quotes” ✓\n"),
        p.stream_end(
            "st-1",
            3,
            "stop",
            [{"document": "Doc", "page": 2, "heading": "H", "snippet": "…", "score": 1.5}],
            cached=True,
            model="offline",
            fallback=True,
            message="switched to the offline tutor",
        ),
        p.pong("p1"),
        p.pong(None),
        p.reconnect("draining", 250),
    ],
    ids=lambda f: f["type"],
)
def test_encode_round_trips_through_json(frame: dict[str, Any]) -> None:
    """Every server frame helper encodes to JSON text that decodes to the same frame."""
    text = p.encode(frame)
    assert isinstance(text, str)
    assert json.loads(text) == frame


def test_welcome_carries_protocol_version() -> None:
    """The welcome frame names the protocol version and the limits given."""
    frame = p.welcome("c-1", "pod-a", "alice", {"max_streams": 2})
    assert frame["type"] == "welcome"
    assert frame["protocol"] == p.PROTOCOL_VERSION
    assert frame["limits"] == {"max_streams": 2}


def test_error_ref_defaults_to_none() -> None:
    """An error frame without a ref carries ref null."""
    assert p.error(ErrorCode.INTERNAL, "oops") == {
        "type": "error",
        "code": "internal",
        "message": "oops",
        "ref": None,
    }


def test_stream_end_fields() -> None:
    """stream.end carries seq, reason, sources, cached, model; fallback and message default off."""
    sources = [{"document": "Doc", "page": 1}]
    assert p.stream_end("st-1", 4, "stop", sources, cached=False, model="gpt") == {
        "type": "stream.end",
        "stream": "st-1",
        "seq": 4,
        "reason": "stop",
        "sources": sources,
        "cached": False,
        "model": "gpt",
        "fallback": False,
        "message": None,
    }


def test_delta_fields() -> None:
    """A delta names its stream, seq and text."""
    assert p.delta("st-1", 1, "Hi") == {"type": "delta", "stream": "st-1", "seq": 1, "text": "Hi"}


# -- constants ----------------------------------------------------------------


def test_close_codes_are_distinct_and_sendable() -> None:
    """Close codes are distinct ints in the sendable standard or application ranges."""
    codes = [value for name, value in vars(CloseCode).items() if name.isupper()]
    assert len(codes) == len(set(codes))
    # 1004-1006 and 1015 are reserved and must never be sent in a close frame.
    standard = set(range(1000, 1015)) - {1004, 1005, 1006}
    for code in codes:
        assert type(code) is int
        assert code in standard or 3000 <= code <= 4999


def test_error_codes_are_distinct() -> None:
    """Every error code constant has its own value."""
    codes = [value for name, value in vars(ErrorCode).items() if name.isupper()]
    assert len(codes) == len(set(codes))
