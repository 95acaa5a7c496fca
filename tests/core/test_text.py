"""Personal data in a learner's text: what keeps a question from ever reaching other learners."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.text import _HOSTS, _WITH_DIGITS, has_personal_data

# Ordinary question words: letters only, as most course questions are written.
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1)
WORDS = st.lists(WORD, min_size=1, max_size=12).map(" ".join)
AROUND = st.tuples(WORDS, WORDS)

DIGIT = st.sampled_from("0123456789")
LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
EMAILS = st.builds(lambda user, host, tld: f"{user}@{host}.{tld}", LETTERS, LETTERS, LETTERS)
URLS = st.one_of(
    st.builds(lambda host, path: f"https://{host}.org/{path}", LETTERS, LETTERS),
    st.builds(lambda host: f"www.{host}.net", LETTERS),
    st.builds(lambda host, tld: f"{host}.{tld}", LETTERS, st.sampled_from(["com", "edu", "de"])),
)
DIGIT_RUNS = st.text(alphabet="0123456789", min_size=3, max_size=20)
PHONES = st.lists(DIGIT, min_size=5, max_size=15).flatmap(
    lambda digits: st.lists(
        st.sampled_from(["", " ", "-", ".", " (", ") ", "/"]),
        min_size=len(digits) - 1,
        max_size=len(digits) - 1,
    ).map(lambda seps: digits[0] + "".join(s + d for s, d in zip(seps, digits[1:], strict=True)))
)
STUDENT_IDS = st.builds(
    lambda head, digits: head + digits,
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=3
    ),
    st.text(alphabet="0123456789", min_size=3, max_size=9),
) | st.builds(
    lambda a, d, b: a + d + b, LETTERS, st.text("0123456789", min_size=1), LETTERS
).filter(lambda token: len(token) >= 4)
PERSONAL = st.one_of(EMAILS, URLS, DIGIT_RUNS, PHONES, STUDENT_IDS)


@given(AROUND, PERSONAL)
def test_personal_data_anywhere_in_a_question_is_found(around: tuple[str, str], found: str) -> None:
    """An e-mail, URL, digit run, phone number or id-like token inside any words is found."""
    before, after = around
    assert has_personal_data(f"{before} {found} {after}?")


@given(AROUND, PERSONAL)
def test_width_and_invisible_characters_do_not_hide_it(around: tuple[str, str], found: str) -> None:
    """Full-width forms and zero-width spaces between its characters still give it away."""
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in found)
    hidden = "\u200b".join(found)
    before, after = around
    assert has_personal_data(f"{before} {wide} {after}")
    assert has_personal_data(f"{before} {hidden} {after}")


@given(WORDS, st.sampled_from(["", "?", "!", ".", " ?"]))
def test_plain_questions_are_not_personal(words: str, end: str) -> None:
    """A question of ordinary words and punctuation holds no personal data."""
    assert not has_personal_data(words + end)


@pytest.mark.parametrize(
    "text",
    [
        "My student number is 4242-1187 and I failed my midterm, what is a syllogism",
        "write to ann.lee@example.org about syllogisms",
        "what is a syllogism, my id is s1234",
        "call me on +44 (0)20 7946 0018",
        "see my notes at notes.example.com/ann",
    ],
)
def test_the_issue_examples_are_personal(text: str) -> None:
    """The questions from the report are all caught."""
    assert has_personal_data(text)


@pytest.mark.parametrize(
    "text",
    [
        "What is a syllogism?",
        "What makes a deductive argument valid?",
        "Explain chapter 2",
        "What is CO2",
    ],
)
def test_course_questions_pass(text: str) -> None:
    """Ordinary course questions, a short number or a formula included, are not held back."""
    assert not has_personal_data(text)


def _one_pattern_verdict(text: str) -> bool:
    """The rule as one regular expression over the whole text, tried at every position."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    every = re.compile(f"{_WITH_DIGITS.pattern}|@|{_HOSTS.pattern}")
    return every.search(re.sub(r"\s+", " ", visible)) is not None


# Pieces of the patterns (words, digits of several scripts, dots, "@", "://",
# top-level domains) and invisible format characters, joined in any order.
PIECES = st.sampled_from(
    [
        "ab",
        "x",
        "Sw1a",
        "com",
        "de",
        "www",
        "org",
        "12",
        "7",
        "\u0663\u0664",
        "\uff11",
        ".",
        "\uff0e",
        "@",
        "\uff20",
        "://",
        ":",
        "/",
        "-",
        "_",
        "(",
        " ",
        "\n",
        "\u200b",
        "\u00ad",
        "\u00e9t\u00e9",
    ]
)
MIXED = st.lists(PIECES, max_size=12).map("".join)


@given(MIXED | st.text(max_size=40))
def test_the_quick_checks_change_no_verdict(text: str) -> None:
    """Skipping a pattern group whose characters are absent finds what one full scan finds."""
    assert has_personal_data(text) is _one_pattern_verdict(text)
