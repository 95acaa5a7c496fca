"""Grading attempts against an answer key: text, numbers and verdicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tutor.grading import (
    CORRECT,
    NO_NUMBER,
    NO_VERDICT,
    AnswerKey,
    grade,
    key_verdict,
    normalise_answer,
    numbers_in,
)

VALID = AnswerKey("valid")


def test_text_key_matches_after_normalisation() -> None:
    """Case, width, accents, punctuation, articles and spacing do not matter."""
    key = AnswerKey("The Mitochondrion")
    assert grade(key, "  \uff4ditochondrion!! ").correct
    assert grade(key, "a MITOCHONDRIÓN").correct


def test_text_key_rejects_other_text() -> None:
    """A different answer is not correct."""
    assert not grade(AnswerKey("mitochondrion"), "ribosome").correct


def test_accepted_form_counts() -> None:
    """An accepted form is as good as the answer."""
    key = AnswerKey("mitochondrion", ("powerhouse of the cell",))
    assert grade(key, "The powerhouse of the cell.").correct


def test_kind_of_each_key() -> None:
    """Keys are told apart as verdict, number or text."""
    assert VALID.kind == "verdict"
    assert AnswerKey("Not valid").kind == "verdict"
    assert AnswerKey("3.5").kind == "number"
    assert AnswerKey("modus ponens").kind == "text"


@pytest.mark.parametrize(
    "attempt", ["1/2", "0.5", "0.50", ".5", "50%", "50 percent", "5e-1", "0,5", "half", "x = 1/2"]
)
def test_number_notations_match(attempt: str) -> None:
    """A number key matches the same value in any notation."""
    assert grade(AnswerKey("0.5"), attempt).correct


def test_latex_fraction_matches() -> None:
    """A LaTeX fraction is read as its value."""
    assert grade(AnswerKey("0.5"), r"$\frac{1}{2}$").correct


def test_number_outside_tolerance_is_wrong() -> None:
    """A value off by more than the relative tolerance is not correct."""
    assert not grade(AnswerKey("3.14159"), "3.1416").correct
    assert grade(AnswerKey("3.14159"), "3.1416", rel_tol=1e-4).correct


def test_thousands_separator_and_decimal_comma() -> None:
    """A comma before exactly three digits groups thousands; otherwise it is a decimal comma."""
    assert grade(AnswerKey("3500"), "3,500").correct
    assert grade(AnswerKey("3.5"), "3,5").correct
    assert not grade(AnswerKey("3.5"), "3,500").correct


def test_last_number_is_the_result() -> None:
    """In a worked attempt, the last number is the one graded."""
    assert grade(AnswerKey("7"), "3 + 4 = 7").correct
    assert not grade(AnswerKey("3"), "3 + 4 = 7").correct


def test_percent_key_accepts_bare_number() -> None:
    """A percentage key accepts its number without the sign."""
    assert grade(AnswerKey("50%"), "50").correct
    assert grade(AnswerKey("50%"), "0.5").correct


def test_number_words_are_read() -> None:
    """Number words up to ninety-nine are numbers."""
    assert grade(AnswerKey("25"), "twenty-five").correct


def test_number_key_with_unit() -> None:
    """A unit after a number key is allowed, and its own digits are not the result."""
    key = AnswerKey("9.8 m/s^2")
    assert key.kind == "number"
    assert grade(key, "g = 9.80 m/s^2").correct
    assert not grade(key, "2 m/s^2").correct


def test_number_key_with_variable() -> None:
    """ "x = 3" is the number 3."""
    assert grade(AnswerKey("x = 3"), "3").correct


def test_two_numbers_make_a_text_key() -> None:
    """A key holding two numbers is compared as text."""
    assert AnswerKey("12 and 13").kind == "text"


def test_no_number_gets_its_own_message() -> None:
    """An attempt without a number is told to give one."""
    result = grade(AnswerKey("42"), "I am not sure")
    assert (result.correct, result.message) == (False, NO_NUMBER)


@pytest.mark.parametrize(
    "attempt", ["valid", "It is valid.", "yes it's valid", "VALID!!", "It isn't invalid"]
)
def test_verdict_stated_matches(attempt: str) -> None:
    """An attempt stating the key's verdict is correct."""
    assert grade(VALID, attempt).correct


@pytest.mark.parametrize(
    "attempt", ["invalid", "not valid", "It is not valid", "I don't think it's valid"]
)
def test_opposite_verdict_is_wrong(attempt: str) -> None:
    """The opposite verdict, negations included, is not correct."""
    assert not grade(VALID, attempt).correct


def test_hedged_verdict_is_wrong() -> None:
    """Naming both verdicts is not an answer."""
    assert not grade(VALID, "valid or invalid").correct


def test_negated_key() -> None:
    """A key "not valid" is matched by "invalid"."""
    assert grade(AnswerKey("not valid"), "It's invalid").correct


def test_bare_yes_needs_an_accepted_form() -> None:
    """ "yes" says nothing about validity unless the key accepts it."""
    result = grade(VALID, "yes")
    assert (result.correct, result.message) == (False, NO_VERDICT)
    assert grade(AnswerKey("valid", ("yes",)), "yes").correct


def test_yes_no_key() -> None:
    """A yes/no key treats true and yes alike."""
    key = AnswerKey("No")
    assert grade(key, "nope").correct
    assert grade(key, "false").correct
    assert not grade(key, "yes").correct


def test_messages_never_hold_the_key() -> None:
    """The learner-facing message is generic."""
    key = AnswerKey("mitochondrion")
    for attempt in ["mitochondrion", "ribosome", ""]:
        assert "mitochondrion" not in grade(key, attempt).message
    assert grade(key, "mitochondrion").message == CORRECT


def test_key_verdict_ignores_longer_text() -> None:
    """Only a lone verdict word makes a verdict key."""
    assert key_verdict("valid by modus ponens") is None


def test_normalise_keeps_a_lone_article() -> None:
    """An answer that is only an article ("A") is not emptied."""
    assert normalise_answer("A") == "a"


def test_numbers_in_reads_scientific_forms() -> None:
    """Exponents in both notations are read."""
    values = [m.values for m in numbers_in("1e3 and 2 x 10^3")]
    assert values == [(1000.0,), (2000.0,)]


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_integers_grade_against_themselves(n: int) -> None:
    """Any integer key is matched by its own digits and not by its successor."""
    key = AnswerKey(str(n))
    assert grade(key, str(n)).correct
    assert not grade(key, str(n + 1)).correct


@given(
    st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False),
)
def test_floats_match_their_repr_and_percent(x: float) -> None:
    """A float key is matched by its repr and by its percentage."""
    key = AnswerKey(repr(x))
    assert grade(key, repr(x)).correct
    assert grade(key, f"{x * 100!r}%").correct
