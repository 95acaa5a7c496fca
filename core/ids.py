"""Identifiers: new random ids, and what a client-chosen id may look like.

Ids that clients choose (ask ids, sessions, courses) share one alphabet; a
course id is at most 64 of its characters. Patterns are matched against the
whole string, so a trailing newline never makes a second, look-alike id.
"""

from __future__ import annotations

import re
import uuid

# The characters of every client-chosen identifier.
IDENT_CHARS = "A-Za-z0-9_.:-"
IDENT_PATTERN = rf"^[{IDENT_CHARS}]+\Z"
_COURSE = re.compile(rf"[{IDENT_CHARS}]{{1,64}}")


def new_id() -> str:
    """A random 128-bit id in hex."""
    return uuid.uuid4().hex


def is_course_id(text: str) -> bool:
    """True when ``text`` is a well-formed course id (1 to 64 identifier characters)."""
    return _COURSE.fullmatch(text) is not None
