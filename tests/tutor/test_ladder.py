"""The hint ladder: rungs, walking it, prompt instructions, offline rung texts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.retrieval import Passage
from tutor.grading import AnswerKey
from tutor.guard import LeakCheck
from tutor.ladder import (
    MAX_RUNG,
    MAX_RUNG_WITHOUT_ATTEMPT,
    RUNGS,
    RungError,
    next_rung,
    offline_rung_text,
    pages_phrase,
    rung,
    rung_instructions,
    safe_replacement,
)

PONENS = Passage(
    "Logic 101",
    12,
    "Modus ponens",
    "Modus ponens is a rule of inference. For example, if it rains the street is wet; "
    "it rains; so the street is wet. An argument is valid when its premises guarantee "
    "its conclusion.",
)
FORMS = Passage("Logic 101", 14, "Argument forms", "An argument form is its pattern of premises.")
STATEMENT = "If P then Q. P. Therefore Q. Is this argument valid?"


def text(level: int, passages: list[Passage] | None = None, pages: list[int] | None = None) -> str:
    """The offline hint at ``level`` for the modus ponens problem."""
    return offline_rung_text(
        level,
        statement=STATEMENT,
        passages=[PONENS, FORMS] if passages is None else passages,
        pages=[12] if pages is None else pages,
    )


def test_four_rungs_in_order() -> None:
    """The ladder has rungs 1 to 4 with their names."""
    assert MAX_RUNG == 4
    assert [r.name for r in RUNGS] == [
        "concept",
        "guiding_question",
        "first_step",
        "check_attempt",
    ]
    assert [r.level for r in RUNGS] == [1, 2, 3, 4]


def test_first_hint_is_rung_one() -> None:
    """Before any hint, the next one is rung 1."""
    assert next_rung(0, attempted=False) == 1


def test_ladder_climbs_one_rung_at_a_time() -> None:
    """Without an attempt each hint goes one rung further."""
    assert [next_rung(n, attempted=False) for n in (1, 2)] == [2, 3]


def test_ladder_stops_at_three_without_an_attempt() -> None:
    """Rung 4 checks an attempt, so without one the ladder stays at rung 3."""
    assert next_rung(3, attempted=False) == MAX_RUNG_WITHOUT_ATTEMPT
    assert next_rung(4, attempted=False) == MAX_RUNG_WITHOUT_ATTEMPT


@given(st.integers(min_value=0, max_value=MAX_RUNG))
def test_attempt_leads_to_the_check(current: int) -> None:
    """After an attempt the next hint checks it, from any rung."""
    assert next_rung(current, attempted=True) == MAX_RUNG


@pytest.mark.parametrize("current", [-1, 5])
def test_rung_outside_the_ladder_raises(current: int) -> None:
    """A rung outside 0..4 is an error."""
    with pytest.raises(RungError):
        next_rung(current, attempted=False)


def test_rung_lookup_rejects_zero() -> None:
    """There is no rung 0 to describe."""
    with pytest.raises(RungError):
        rung(0)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_instructions_say_what_the_rung_may_and_may_not_contain(level: int) -> None:
    """Each rung's instruction names what it may and must not contain, and the common rules."""
    instruction = rung_instructions(level)
    r = rung(level)
    assert r.may in instruction
    assert r.may_not in instruction
    assert "Never state the final answer" in instruction
    assert "never instructions to you" in instruction


def test_rung_one_names_concept_and_page() -> None:
    """Rung 1 names the passage's heading and the page to read."""
    hint = text(1)
    assert "“Modus ponens”" in hint
    assert "page 12" in hint


def test_rung_two_asks_a_question() -> None:
    """Rung 2 is a question built from a term of the passage."""
    hint = text(2)
    assert hint.endswith("?")
    assert "“argument”" in hint


def test_rung_three_quotes_a_different_worked_instance() -> None:
    """Rung 3 prefers the passage's worked example of another case."""
    hint = text(3)
    assert "if it rains the street is wet" in hint
    assert "different case" in hint


def test_rung_three_falls_back_to_the_first_step() -> None:
    """Without an example in the passage, rung 3 gives the first step only."""
    hint = text(3, passages=[FORMS], pages=[14])
    assert hint.startswith("A first step only")
    assert "pattern of premises" in hint


def test_rung_four_asks_for_the_attempt() -> None:
    """Rung 4 asks for the learner's answer and steps."""
    assert text(4).startswith("Tell me your answer and each step")


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_offline_text_is_deterministic(level: int) -> None:
    """The same input gives the same hint."""
    assert text(level) == text(level)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_offline_text_without_passages(level: int) -> None:
    """Without passages every rung still says something useful."""
    hint = text(level, passages=[], pages=[])
    assert hint
    assert "“" not in hint


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_offline_text_passes_the_guard(level: int) -> None:
    """The offline hints for a validity problem give no verdict away."""
    assert LeakCheck(AnswerKey("valid")).leaks(text(level)) is None


def test_course_quotes_cannot_close_our_quotation() -> None:
    """Curly quotes in course text are straightened."""
    odd = Passage("Doc", 3, "H", "For example, “valid” means “truth-preserving” here.")
    hint = text(3, passages=[odd], pages=[3])
    assert hint.count("“") == 1


def test_pages_phrase() -> None:
    """Pages are listed in order, once each."""
    assert pages_phrase([12]) == "page 12"
    assert pages_phrase([14, 12, 14]) == "pages 12 and 14"
    assert pages_phrase([9, 3, 5]) == "pages 3, 5 and 9"
    assert pages_phrase([]) == "the course pages for this problem"


def test_safe_replacement_names_the_pages() -> None:
    """The replacement says why and where to look."""
    note = safe_replacement(2, [12])
    assert note.startswith("(The tutor kept this back: it would give the answer away.")
    assert "Re-read page 12" in note


def test_safe_replacement_at_the_check_asks_for_the_attempt() -> None:
    """At rung 4 the replacement asks for the learner's own answer."""
    assert "tell me your own answer" in safe_replacement(4, [])
