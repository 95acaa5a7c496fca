"""Which questions count as the same, and which answers may be shared between learners."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cache.answers import answer_key, shareable, split_for_delivery
from core.text import normalise


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is a valid argument?", "what is a valid argument"),
        ("What  is a\tvalid argument ?", "What is a valid argument!"),
        ("WHAT IS A VALID ARGUMENT\uff1f", "what is a valid argument."),
        ("What\u2019s a fallacy?", "What's a fallacy"),
    ],
)
def test_spelling_variants_normalise_alike(a: str, b: str) -> None:
    """Case, spacing, full-width forms, curly quotes and trailing punctuation do not matter."""
    assert normalise(a) == normalise(b)
    assert answer_key("demo", "v1", "explain", "m", a) == answer_key(
        "demo", "v1", "explain", "m", b
    )


def test_keys_differ_by_course_version_mode_and_model() -> None:
    """Each part of the key separates answers: another course, index, mode or model misses."""
    base = ("demo", "v1", "explain", "m", "What is a valid argument?")
    key = answer_key(*base)
    for i, other in enumerate(("bio", "v2", "hint", "m2", "What is a sound argument?")):
        changed = list(base)
        changed[i] = other
        assert answer_key(*changed) != key


def test_keys_do_not_contain_the_question() -> None:
    """A key is a fixed-length hash: questions never show up in Redis key names."""
    key = answer_key("demo", "v1", "explain", "m", "What is my secret password?")
    assert len(key) == 32 and "secret" not in key


@pytest.mark.parametrize(
    ("question", "mode", "first", "expected"),
    [
        ("What is a valid argument?", "explain", True, True),
        ("What is a valid argument?", "explain", False, True),
        ("What is a valid argument?", "hint", True, False),
        ("Why?", "explain", True, True),
        ("Why?", "explain", False, False),
        ("Can you explain that more simply?", "explain", False, False),
        ("Give another example please", "explain", False, False),
        ("How do I weigh evidence for a claim?", "explain", False, True),
        ("???", "explain", True, False),
        ("", "explain", True, False),
        # Later questions need four words and nothing pointing back, in any case.
        ("What is validity?", "explain", False, False),
        ("Define a valid argument", "explain", False, True),
        ("Explain THAT argument form", "explain", False, False),
        ("Is the previous example sound?", "explain", False, False),
        ("Define a valid deductive argument", "hint", False, False),
    ],
)
def test_shareable(question: str, mode: str, first: bool, expected: bool) -> None:
    """Explain answers to self-contained questions are shared; hints and follow-ups are not."""
    assert shareable(question, mode, first_in_session=first) is expected


@given(st.text(max_size=400), st.integers(min_value=8, max_value=200))
def test_split_for_delivery_keeps_the_text(text: str, max_chars: int) -> None:
    """Pieces join back into the answer exactly, none empty and none over the limit."""
    pieces = split_for_delivery(text, max_chars)
    assert "".join(pieces) == text
    assert all(0 < len(piece) <= max_chars for piece in pieces)
