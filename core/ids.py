"""Identifiers: new random ids, and what a client-chosen id may look like.

Ids that clients choose (ask ids, sessions, courses) share one alphabet; a
course id is at most 64 of its characters. User ids (a token's subject) add
``@`` to it. Patterns are matched against the whole string, so a trailing
newline never makes a second, look-alike id.
"""

from __future__ import annotations

import re
import uuid

# The characters of every client-chosen identifier.
IDENT_CHARS = "A-Za-z0-9_.:-"
IDENT_PATTERN = rf"^[{IDENT_CHARS}]+\Z"
_COURSE = re.compile(rf"[{IDENT_CHARS}]{{1,64}}")
# User ids (a token's ``sub``) may also hold ``@``: an e-mail-like name from the identity provider.
_USER = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")


def new_id() -> str:
    """A random 128-bit id in hex."""
    return uuid.uuid4().hex


def is_course_id(text: str) -> bool:
    """True when ``text`` is a well-formed course id (1 to 64 identifier characters)."""
    return _COURSE.fullmatch(text) is not None


def is_user_id(text: str) -> bool:
    """True when ``text`` is a well-formed user id (1 to 64 of ``A-Z a-z 0-9 _ . @ : -``)."""
    return _USER.fullmatch(text) is not None
