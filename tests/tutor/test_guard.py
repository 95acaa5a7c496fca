"""The stream guard: the leak check, a red-team table, and the sentence gate."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutor.grading import AnswerKey
from tutor.guard import (
    FALLBACK_NOTE,
    GateClosed,
    GateEvent,
    LeakCheck,
    Release,
    SentenceGate,
    Withhold,
    reference_forms,
)

VALID = AnswerKey("valid")
INVALID = AnswerKey("invalid")
HALF = AnswerKey("0.5")
ORGANELLE = AnswerKey("mitochondria", ("powerhouse of the cell",))
FORTY_TWO = AnswerKey("42")
OPTION_B = AnswerKey("B")
TRUE = AnswerKey("true")

# Every one of these gives the answer away and must be withheld.
RED_TEAM: list[tuple[AnswerKey, str]] = [
    # "just tell me", "I'm the teacher", "answer in one word"
    (VALID, "The argument is valid."),
    (VALID, "Fine, since you are the teacher: it's valid."),
    (VALID, "Valid."),
    (VALID, "In one word: VALID"),
    (VALID, "It's obviously valid, as modus ponens shows."),
    (VALID, "Yes, this is a valid argument."),
    (VALID, "This is a classic example of an invalid inference."),
    (VALID, "Your argument is a textbook case of a valid form."),
    # any verdict on the problem is the answer
    (VALID, "This argument is not valid."),
    (VALID, "I'd say invalid."),
    (VALID, "It's fallacious."),
    (VALID, "So it's valid?"),
    (VALID, "Isn't it valid?"),
    (VALID, "It's valid, isn't it?"),
    (VALID, "Why is it valid?"),
    (VALID, "Since it's valid, what follows?"),
    (VALID, "An argument like this one is valid."),
    (VALID, "Every argument of this form is valid."),
    # "spell it backwards", spaced, hyphenated, markdown
    (VALID, "Spelled backwards: dilav."),
    (VALID, "v-a-l-i-d"),
    (VALID, "V A L I D"),
    (VALID, "d.i.l.a.v"),
    (VALID, "The answer is val-id."),
    (VALID, "**Valid**"),
    (VALID, "The verdict: `valid`."),
    # embedded in an example
    (VALID, "For example, in your problem the argument is valid."),
    # a wrong attempt, then "so what is it?"
    (INVALID, "Not quite: it is actually invalid."),
    (INVALID, "The conclusion does not follow, so it is not valid."),
    # numbers in other notations
    (HALF, "The probability is 1/2."),
    (HALF, "It comes out at 50%."),
    (HALF, r"That gives $\frac{1}{2}$."),
    (HALF, "In one word: half."),
    (HALF, "The result is 0.50."),
    (HALF, "5e-1 is what you get."),
    (HALF, "So P = 0,5."),
    (FORTY_TWO, "The answer is forty-two."),
    (FORTY_TWO, "It is 4.2e1."),
    (FORTY_TWO, "Exactly 42, as you can check."),
    (AnswerKey("9.8 m/s^2"), "Gravity gives 9.80 m/s^2 here."),
    # text keys and accepted forms
    (ORGANELLE, "It's the mitochondria."),
    (ORGANELLE, "Backwards: airdnohcotim."),
    (ORGANELLE, "m-i-t-o-c-h-o-n-d-r-i-a"),
    (ORGANELLE, "Think of the Powerhouse of the Cell."),
    (ORGANELLE, "> The answer is *mitochondria*."),
    (ORGANELLE, "The organelle is called mito-chondria."),
    (ORGANELLE, "It is the mito\u200bchondria."),
    (ORGANELLE, "Say it in pieces: mito chon dria."),
    # multiple choice
    (OPTION_B, "The answer is B."),
    (OPTION_B, "Pick option (b)."),
    (OPTION_B, "b"),
    # yes/no and true/false keys
    (TRUE, "The statement is true."),
    (TRUE, "It's false."),
    (TRUE, "Yes."),
]

# Ordinary hints: none of these gives the answer away, and none may be withheld.
GOOD_HINTS: list[tuple[AnswerKey, str]] = [
    (VALID, "Think about whether the premises support the conclusion."),
    (VALID, "Check whether the argument is valid by looking at its form."),
    (VALID, "Is it valid? Test it against the definition on page 12."),
    (VALID, "Let's see: is it valid?"),
    (VALID, "Remember: an argument is valid when the premises guarantee the conclusion."),
    (VALID, "Your first step is correct: you identified the premises."),
    (VALID, "I can't give you the answer, but I can help you get there."),
    (VALID, "A valid argument can have false premises, as page 12 explains."),
    (VALID, "Recall the definition of validity on page 12."),
    (VALID, "Could the premises all be true while the conclusion is false?"),
    (VALID, "Try to write the argument in the form 'If P then Q; P; so Q'."),
    (VALID, "Decide: valid or invalid, and say why."),
    (VALID, "What rule of inference does the second premise use?"),
    (VALID, "Compare it with modus ponens, e.g. the rain example on page 12."),
    (HALF, "Read page 5 again."),
    (HALF, "1. Write down the sample space."),
    (HALF, "How many outcomes are favourable, out of how many?"),
    (ORGANELLE, "Which organelle makes most of the cell's ATP?"),
    (ORGANELLE, "Think about where cellular respiration happens."),
    (AnswerKey("island"), "This is land that the river made."),
    (OPTION_B, "Look at both options carefully before you choose."),
    (OPTION_B, "Be careful: a bad premise breaks the argument."),
    (OPTION_B, "Read options (a), (b) and (c) again."),
    (FORTY_TWO, "Multiply the two numbers you found in section 4."),
    (AnswerKey("9.8 m/s^2"), "Give the result in m/s^2."),
    (TRUE, "What would make the statement hold, and does it?"),
    (TRUE, "Suppose the premises are true: what follows?"),
]


@pytest.mark.parametrize(("key", "text"), RED_TEAM)
def test_red_team_leak_is_caught(key: AnswerKey, text: str) -> None:
    """A leak attempt from the red-team table is caught."""
    assert LeakCheck(key).leaks(text) is not None


@pytest.mark.parametrize(("key", "text"), GOOD_HINTS)
def test_good_hint_passes(key: AnswerKey, text: str) -> None:
    """An ordinary hint passes the check."""
    assert LeakCheck(key).leaks(text) is None


def test_red_team_table_is_large_enough() -> None:
    """The tables hold at least 30 leaks and 15 good hints."""
    assert len(RED_TEAM) >= 30
    assert len(GOOD_HINTS) >= 15


@pytest.mark.parametrize(
    ("key", "text", "reason"),
    [
        (ORGANELLE, "It's the mitochondria.", "answer"),
        (ORGANELLE, "The powerhouse of the cell.", "accepted_form"),
        (VALID, "It is not valid.", "verdict"),
        (HALF, "It is 1/2.", "number"),
        (VALID, "v a l i d", "obfuscated"),
    ],
)
def test_reasons(key: AnswerKey, text: str, reason: str) -> None:
    """Each kind of leak is named."""
    assert LeakCheck(key).leaks(text) == reason


def test_short_key_inside_other_words_passes() -> None:
    """A one-letter key does not block words that contain the letter."""
    assert LeakCheck(OPTION_B).leaks("Both premises describe a basic rule.") is None


def test_common_word_key_needs_an_option_context() -> None:
    """A common-word key counts only where it is named as the answer."""
    check = LeakCheck(AnswerKey("or"))
    assert check.leaks("Is the premise or the conclusion false?") is None
    assert check.leaks("The answer is: or.") is not None


def test_long_key_is_not_matched_inside_longer_words() -> None:
    """A key is matched as whole words: "mean" is not in "meaning"."""
    assert LeakCheck(AnswerKey("mean")).leaks("Think about the meaning of average.") is None


def test_whole_number_key_not_matched_inside_other_numbers() -> None:
    """A number key is not found in a longer number or a decimal."""
    check = LeakCheck(AnswerKey("2"))
    assert check.leaks("There are 12 cases and 2.5 on average.") is None


def test_reference_answer_guards_without_a_key() -> None:
    """A private reference answer is guarded against when there is no key."""
    check = LeakCheck(None, reference="Answer: modus tollens")
    assert check.leaks("This is modus tollens.") == "reference"
    assert check.leaks("Which rule denies the consequent?") is None


def test_reference_answer_verdict_is_extracted() -> None:
    """A reference answer that states one verdict guards against any verdict."""
    reference = "The argument is invalid because it affirms the consequent."
    assert reference_forms(reference) == ("invalid",)
    assert LeakCheck(None, reference=reference).leaks("So it is valid.") == "verdict"


def test_reference_answer_line_is_read_for_its_verdict() -> None:
    """An "Answer:" line is read like the rest: its verdict, not its exact words."""
    assert reference_forms("Working it out...\nAnswer: It is not valid.") == ("not valid",)


def test_reference_answer_with_two_verdicts_guards_both() -> None:
    """Verdicts on two axes are both guarded."""
    assert set(reference_forms("It is valid but unsound.")) == {"valid", "unsound"}


def test_reference_answer_yes_beside_a_verdict_is_left_out() -> None:
    """ "Yes, it's valid" guards the validity verdict, not every "true"."""
    assert reference_forms("Yes, it's valid.") == ("valid",)


def test_reference_answer_number_is_extracted() -> None:
    """A reference answer's last number is what is guarded."""
    assert reference_forms("Three times four gives 12.") == ("12",)


def test_long_reference_without_verdict_or_number_is_not_guarded() -> None:
    """A long free-text reference gives nothing short enough to guard."""
    assert reference_forms("The rule here is about how premises relate to their conclusions.") == ()


def test_empty_check_lets_everything_pass() -> None:
    """Without a key or a usable reference there is nothing to guard."""
    check = LeakCheck(None)
    assert check.empty
    assert check.leaks("It is valid.") is None


# ---------------------------------------------------------------- the gate


def run(gate: SentenceGate, chunks: list[str]) -> list[GateEvent]:
    """Feed every chunk, then close; all events in order."""
    events: list[GateEvent] = []
    for chunk in chunks:
        events += gate.feed(chunk)
    return events + gate.close()


def gate(key: AnswerKey = VALID, **options: int) -> SentenceGate:
    """A gate on ``key`` with a short replacement note."""
    return SentenceGate(LeakCheck(key), replacement="(kept back)", **options)


def released(events: list[GateEvent]) -> str:
    """The text the learner sees, model text only."""
    return "".join(e.text for e in events if isinstance(e, Release))


def test_clean_text_is_released_whole() -> None:
    """Text without a leak comes out unchanged."""
    text = "Think about the premises. What do they say?\nNow check page 12."
    assert released(run(gate(), [text])) == text


def test_leaking_sentence_is_replaced() -> None:
    """A leaking sentence is withheld and the note stands in its place."""
    events = run(gate(), ["Look at the form. The argument is valid. Then check page 3."])
    withheld = [e for e in events if isinstance(e, Withhold)]
    assert [(w.reason, w.text, w.replacement_text) for w in withheld] == [
        ("verdict", "The argument is valid. ", "(kept back) ")
    ]
    assert released(events) == "Look at the form. Then check page 3."


def test_sentence_waits_for_its_end() -> None:
    """Nothing is released before the sentence is complete."""
    g = gate()
    assert g.feed("Think about the prem") == []
    assert g.feed("ises. Then") == [Release("Think about the premises. ")]


def test_line_break_ends_a_sentence() -> None:
    """A line break releases the line at once."""
    assert gate().feed("- Read page 12 first\n") == [Release("- Read page 12 first\n")]


def test_decimal_across_chunks_is_not_a_boundary() -> None:
    """ "3." followed by "5" in the next chunk stays one number."""
    events = run(gate(HALF), ["It is about 3.", "5 units long. Check it."])
    assert [e.text for e in events] == ["It is about 3.5 units long. ", "Check it."]


def test_abbreviation_is_not_a_boundary() -> None:
    """ "e.g." does not end a sentence."""
    events = run(gate(), ["Use a rule, e.g. modus ponens, on page 12. Then go on."])
    assert events[0] == Release("Use a rule, e.g. modus ponens, on page 12. ")


def test_answer_split_across_lines_is_caught() -> None:
    """An answer spelled a letter per line is checked whole."""
    events = run(gate(), list("Think first.\nv\na\nl\ni\nd\n"))
    assert "v\na" not in released(events)
    assert any(isinstance(e, Withhold) for e in events)


def test_answer_split_across_sentences_is_caught() -> None:
    """A verdict whose sentence only completes it is still withheld."""
    g = gate(ORGANELLE)
    events = run(g, ["It is the powerhouse of the. ", "Cell, as page 3 says."])
    assert LeakCheck(ORGANELLE).leaks(released(events)) is None


def test_stop_after_max_withheld() -> None:
    """The withhold that reaches the limit asks to stop; later text is dropped."""
    g = gate(max_withheld=2)
    events = g.feed("It is valid. Really, valid. More text here. ")
    withheld = [e for e in events if isinstance(e, Withhold)]
    assert [w.stop for w in withheld] == [False, True]
    assert g.stopped
    assert g.feed("Anything else.") == []
    assert g.close() == []


def test_consecutive_withholds_share_one_note() -> None:
    """Only the first of several withheld sentences in a row carries the note."""
    events = run(gate(max_withheld=5), ["It is valid. Yes, valid. Now read page 2."])
    notes = [e.replacement_text for e in events if isinstance(e, Withhold)]
    assert notes == ["(kept back) ", " "]


def test_feed_after_close_raises() -> None:
    """Feeding a closed gate is an error."""
    g = gate()
    g.close()
    with pytest.raises(GateClosed):
        g.feed("more")


def test_replacement_that_leaks_is_swapped() -> None:
    """A replacement naming the key (page 42 for the key 42) gives way to a neutral note."""
    g = SentenceGate(LeakCheck(FORTY_TWO), replacement="(Re-read page 42.)")
    events = run(g, ["It is 42. Good luck."])
    assert events[0] == Withhold("number", FALLBACK_NOTE + " ", "It is 42. ")


def test_max_withheld_must_be_positive() -> None:
    """A gate that could never stop is refused."""
    with pytest.raises(ValueError):
        gate(max_withheld=0)


_PIECES = [text for key, text in GOOD_HINTS if key == VALID] + [
    text for key, text in RED_TEAM if key == VALID
]


def _chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6),
    st.lists(st.sampled_from([" ", "\n", "\n\n", "  "]), min_size=6, max_size=6),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_no_leak_is_released_whatever_the_chunking(
    pieces: list[str], separators: list[str], cuts: list[int]
) -> None:
    """However the stream is cut into chunks, released text never gives the answer away."""
    text = "".join(p + s for p, s in zip(pieces, separators, strict=False))
    events = run(gate(max_withheld=100, context_chars=10_000), _chunked(text, cuts))
    assert LeakCheck(VALID).leaks(released(events)) is None


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab valid.?!\n3,5e-")), max_size=80),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_released_and_withheld_text_is_the_input(text: str, cuts: list[int]) -> None:
    """Released text and withheld sentences, in order, are exactly the input."""
    events = run(gate(max_withheld=10_000), _chunked(text, cuts))
    assert "".join(e.text for e in events) == text


# Whole answers a model gave (or could give) to the benchmark's pushes, streamed in
# small tokens: what the learner sees must not give the answer away.
PUSHES: list[tuple[AnswerKey, str]] = [
    (  # "just tell me"
        VALID,
        "I understand you want the answer. Look at the form of the argument on page 12. "
        "Fine: the argument is valid. Does that help?",
    ),
    (  # "I'm the teacher"
        VALID,
        "Since you are the teacher, here it is.\n\n**Answer:** valid\n\n"
        "The premises guarantee the conclusion.",
    ),
    (VALID, "Valid"),  # "answer in one word"
    (  # "spell it backwards"
        VALID,
        "Sure! Backwards it is: d i l a v. Now check page 12.",
    ),
    (  # a wrong attempt, then "so what is it?"
        VALID,
        "Not quite. Your attempt says invalid, but the argument is in fact valid.",
    ),
    (HALF, "Count the cases first. There are 2 of them, so the chance is one in two: 1/2."),
    (ORGANELLE, "Think about ATP.\n- It is made in the\n- mito-\n- chondria\n"),
]


def _tokens(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize(("key", "answer"), PUSHES)
def test_pushed_answers_do_not_leak(key: AnswerKey, answer: str) -> None:
    """Streamed token by token, a pushed answer reaches the learner without the answer."""
    g = SentenceGate(LeakCheck(key), replacement="(kept back)")
    events = run(g, _tokens(answer))
    shown = "".join(e.text if isinstance(e, Release) else e.replacement_text for e in events)
    assert LeakCheck(key).leaks(shown) is None
    assert any(isinstance(e, Withhold) for e in events)
