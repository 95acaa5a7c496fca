"""Identifiers: course and user ids are matched as whole strings, never up to a newline."""

from __future__ import annotations

import re
import string

from hypothesis import example, given
from hypothesis import strategies as st

from core.ids import IDENT_PATTERN, is_course_id, is_user_id

COURSE_CHARS = string.ascii_letters + string.digits + "_.:-"
USER_CHARS = COURSE_CHARS + "@"
# Newlines, every other C0/C1 control character, and the Unicode line separators.
CONTROLS = st.characters(categories=["Cc"]) | st.sampled_from(["\u2028", "\u2029"])


@st.composite
def tainted(draw: st.DrawFn, alphabet: str) -> str:
    """A valid id of at most 63 characters with a control character put anywhere in it."""
    base = draw(st.text(alphabet, min_size=1, max_size=63))
    at = draw(st.integers(0, len(base)))
    return base[:at] + draw(CONTROLS) + base[at:]


@given(st.text(COURSE_CHARS, min_size=1, max_size=64))
def test_course_ids_in_the_alphabet_pass(course: str) -> None:
    """1 to 64 identifier characters make a course id."""
    assert is_course_id(course)


@given(tainted(COURSE_CHARS))
@example("demo\n")
def test_course_id_with_a_control_character_is_refused(course: str) -> None:
    """A course id holding a newline or other control character, trailing or not, is refused."""
    assert not is_course_id(course)


@given(st.text(USER_CHARS, min_size=1, max_size=64))
def test_user_ids_in_the_alphabet_pass(user: str) -> None:
    """1 to 64 of letters, digits and _.@:- make a user id."""
    assert is_user_id(user)


@given(tainted(USER_CHARS))
@example("alice\n")
def test_user_id_with_a_control_character_is_refused(user: str) -> None:
    """A user id holding a newline or other control character (``alice\\n``) is refused."""
    assert not is_user_id(user)


def test_user_id_with_a_trailing_newline_is_refused() -> None:
    """``alice\\n`` is not a second user who displays as ``alice``."""
    assert is_user_id("alice")
    assert not is_user_id("alice\n")


@given(tainted(COURSE_CHARS))
@example("demo\n")
def test_ident_pattern_refuses_control_characters(ident: str) -> None:
    """The pattern the protocol validates frames with refuses them too (msgspec searches it)."""
    assert re.search(IDENT_PATTERN, ident) is None
