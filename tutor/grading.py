"""Grading a learner's attempt against a problem's answer key, on the server.

An :class:`AnswerKey` holds the instructor's answer and the other forms that
count as the same answer. :func:`grade` says whether an attempt matches and
of which kind the key is:

- ``verdict``: the key is one verdict word (``valid``, ``invalid``, ``yes``,
  ``false``, ``sound``, …, see :data:`VERDICTS`), optionally after ``not``.
  The attempt is correct when it states the key's verdict on the key's axis
  and never the opposite one: "yes, it's valid" and "it is not invalid" match
  ``valid``; "not valid" and "valid or invalid" do not.
- ``number``: the key reads as one number. Numbers in the attempt are parsed
  (:func:`numbers_in`) and compared as numbers with a relative tolerance.
- ``text``: anything else; compared after :func:`normalise_answer`.

The message of a :class:`Grade` is generic and never holds the key: where
to look next is the caller's to add.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

GradeKind = Literal["text", "number", "verdict"]

# Axis -> (words stating the positive verdict, words stating the negative one).
# "affirm" is the plain yes/no and true/false axis; the others are the verdicts of
# logic and analysis courses. A key on another axis is not matched by a bare "yes".
VERDICTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "affirm": (
        frozenset({"yes", "yeah", "yep", "yup", "affirmative", "true", "correct"}),
        frozenset({"no", "nope", "nah", "false", "incorrect"}),
    ),
    "validity": (frozenset({"valid"}), frozenset({"invalid", "fallacious"})),
    "soundness": (frozenset({"sound"}), frozenset({"unsound"})),
    "consistency": (frozenset({"consistent"}), frozenset({"inconsistent"})),
    "satisfiability": (frozenset({"satisfiable"}), frozenset({"unsatisfiable"})),
    "cogency": (frozenset({"cogent"}), frozenset({"uncogent"})),
    "possibility": (frozenset({"possible"}), frozenset({"impossible"})),
    "convergence": (
        frozenset({"convergent", "converges", "converge"}),
        frozenset({"divergent", "diverges", "diverge"}),
    ),
}
# Word -> (axis, +1 or -1).
VERDICT_WORDS: dict[str, tuple[str, int]] = {
    word: (axis, sign)
    for axis, (positive, negative) in VERDICTS.items()
    for sign, words in ((1, positive), (-1, negative))
    for word in words
}
# Words that flip the verdict word that follows them in the same clause.
NEGATORS = frozenset({"not", "never", "neither", "nor", "cannot", "hardly"})
# How many words back a negator still reaches ("it is not really valid").
NEGATION_REACH = 4
ARTICLES = frozenset({"a", "an", "the"})

_CONTRACTION = re.compile(r"(\w)n[\u2019']t\b")
_CANT = re.compile(r"\b(can|won)[\u2019']t\b")
_MARK = re.compile(r"[\u0300-\u036f\u200b-\u200f\u2060\ufeff]")
_WORD = re.compile(r"[^\W_]+")
_CLAUSE = re.compile(r"[,;:()\[\]\"“”.!?\n]|\bbut\b|\bwhereas\b|\bhowever\b")


def fold(text: str) -> str:
    """NFKC, case folded, accents and invisible characters removed, contractions spelled out."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    text = unicodedata.normalize("NFC", _MARK.sub("", text))
    text = _CANT.sub(lambda m: ("can" if m.group(1) == "can" else "will") + " not", text)
    return _CONTRACTION.sub(r"\1 not", text)


def words(text: str) -> list[str]:
    """The folded words of ``text``: letters and digits, everything else a separator."""
    return _WORD.findall(fold(text))


def normalise_answer(text: str) -> str:
    """Folded words joined by one space, articles dropped unless nothing else is left."""
    found = words(text)
    kept = [w for w in found if w not in ARTICLES]
    return " ".join(kept or found)


# ---------------------------------------------------------------- numbers

_SMALL_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_SMALL = {w: i for i, w in enumerate(_SMALL_WORDS.split())}
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety"
_TENS = {w: 10 * i for i, w in enumerate(_TENS_WORDS.split(), 2)}
_NUMBER_WORD = re.compile(
    r"\b(?:(" + "|".join(_TENS) + r")(?:[\s-]+(" + "|".join(list(_SMALL)[1:10]) + r"))?"
    r"|(" + "|".join(_SMALL) + r")|(half))\b"
)
_FRAC_TEX = re.compile(r"\\[dt]?frac\s*\{\s*([-+]?\d+)\s*\}\s*\{\s*([-+]?\d+)\s*\}")
# A number as written: sign, digits with thousands separators or a decimal point or comma,
# an exponent, then a fraction bar or a percent sign. Not inside a word ("x2", "2nd").
_NUMBER = re.compile(
    r"(?<![\w.,/])([-+\u2212]?)"
    r"(\d+(?:[.,]\d+)*|\.\d+)"
    r"(?:[eE]([-+]?\d+)|\s*[x\u00d7]\s*10\s*\^\s*\{?([-+]?\d+)\}?)?"
    r"(?:\s*/\s*(\d+(?:\.\d+)?))?"
    r"(\s*(?:%|percent\b|per\s*cent\b))?"
    r"(?![\w])"
)


@dataclass(frozen=True, slots=True)
class NumberMention:
    """A number found in text: its possible values, and where it stands."""

    values: tuple[float, ...]
    start: int
    end: int
    percent: bool = False


def _digits_values(digits: str) -> list[float]:
    """Every reading of ``digits``: "3,500" is 3500, "3,5" is 3.5, "1,2" may also be a list."""
    if "," not in digits:
        try:
            return [float(digits)] if digits.count(".") <= 1 else []
        except ValueError:
            return []
    readings: list[float] = []
    groups = digits.split(",")
    # Thousands separators: every group after the first has three digits.
    if "." not in "".join(groups[:-1]) and all(len(g.split(".")[0]) == 3 for g in groups[1:]):
        readings.append(float("".join(groups)))
    # A decimal comma: one comma and no point ("3,5", "0,25").
    if len(groups) == 2 and "." not in digits and len(groups[1]) != 3:
        readings.append(float(digits.replace(",", ".")))
    if not readings:
        # A list written without spaces ("1,2,3"): each item.
        readings = [float(g) for g in groups if g and g.count(".") <= 1]
    return readings


def numbers_in(text: str) -> list[NumberMention]:
    """Every number written in ``text``, with each reading it may have.

    Read: integers and decimals ("3.50"), thousands separators ("3,500"),
    a decimal comma when the comma is not followed by exactly three digits
    ("3,5" = 3.5; "3,500" = 3500), exponents ("1e3", "2 x 10^3"), fractions
    ("1/2", "\\frac{1}{2}"), percentages ("50%", "50 percent" = 0.5), and
    number words from zero to ninety-nine and "half".
    """
    folded = fold(text)
    found: list[NumberMention] = []
    taken: list[tuple[int, int]] = []
    for m in _FRAC_TEX.finditer(folded):
        taken.append(m.span())
        denominator = int(m.group(2))
        if denominator:
            value = float(Fraction(int(m.group(1)), denominator))
            found.append(NumberMention((value,), m.start(), m.end()))
    for m in _NUMBER.finditer(folded):
        if any(a <= m.start() < b for a, b in taken):
            continue
        sign, digits, exp, exp10, den, pct = m.groups()
        values = _digits_values(digits)
        power = exp or exp10
        if power is not None:
            values = [v * 10.0 ** int(power) for v in values]
        if den is not None:
            d = float(den)
            values = [v / d for v in values] if d else []
        if pct:
            values = [v / 100 for v in values]
        if sign in ("-", "\u2212"):
            values = [-v for v in values]
        if values:
            found.append(NumberMention(tuple(values), m.start(), m.end(), percent=bool(pct)))
    for m in _NUMBER_WORD.finditer(folded):
        tens, unit, small, half = m.groups()
        if half:
            value = 0.5
        elif small:
            value = float(_SMALL[small])
        else:
            value = float(_TENS[tens] + (_SMALL[unit] if unit else 0))
        found.append(NumberMention((value,), m.start(), m.end()))
    return sorted(found, key=lambda n: n.start)


# "x = " before a number key: a variable named by up to three characters.
_VARIABLE = re.compile(r"^\s*[^\W\d_]\w{0,2}\s*=\s*")
# A unit after a number key: at most three words, digits only as powers ("m/s^2", "cm2").
_UNIT = re.compile(r"[^\W\d_][^\s]*(?:\s+[^\W\d_][^\s]*){0,2}")
_LOOSE_DIGIT = re.compile(r"(?<![\^\w])\d")


def _number_key(text: str) -> tuple[NumberMention, str] | None:
    folded = _VARIABLE.sub("", fold(text).strip())
    mentions = numbers_in(folded)
    if not mentions or _WORD.search(folded[: mentions[0].start]):
        return None
    first = mentions[0]
    unit = folded[first.end :].strip()
    if unit and (not _UNIT.fullmatch(unit) or _LOOSE_DIGIT.search(unit)):
        return None
    return first, unit


def key_number(text: str) -> NumberMention | None:
    """The number ``text`` consists of ("3.5", "x = 1/2", "9.8 m/s^2"), or None.

    A variable before it ("x =") and a unit of at most three words after it
    are allowed; anything else makes the key text.
    """
    found = _number_key(text)
    return found[0] if found is not None else None


def key_unit(text: str) -> str:
    """The unit after a number key ("m/s^2" in "9.8 m/s^2"), folded; empty when none."""
    found = _number_key(text)
    return found[1] if found is not None else ""


def without_unit(text: str, unit: str) -> str:
    """``text`` folded, with the standalone occurrences of ``unit`` blanked out."""
    folded = fold(text)
    if not unit:
        return folded
    return re.sub(rf"(?<![^\W_]){re.escape(unit)}(?![^\W_])", " ", folded)


def same_number(a: float, b: float, rel_tol: float = 1e-6, abs_tol: float = 1e-12) -> bool:
    """True when ``a`` and ``b`` are equal within the tolerances."""
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def number_matches(
    key: NumberMention, mention: NumberMention, rel_tol: float = 1e-6, abs_tol: float = 1e-12
) -> bool:
    """True when some reading of ``mention`` is the key's value.

    A percentage key ("50%") also matches its bare number ("50"): the learner
    gave the percentage without its sign. Two whole numbers must be equal.
    """
    targets = list(key.values)
    if key.percent:
        targets += [v * 100 for v in key.values]
    return any(_close(t, v, rel_tol, abs_tol) for t in targets for v in mention.values)


def _close(a: float, b: float, rel_tol: float, abs_tol: float) -> bool:
    # Whole numbers are counted, not measured: 999999 is not 1000000 at any tolerance.
    if a.is_integer() and b.is_integer():
        return a == b
    return same_number(a, b, rel_tol, abs_tol)


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verdict stated in text: its axis and sign after negation."""

    axis: str
    sign: int
    word: str


def key_verdict(text: str) -> Verdict | None:
    """The verdict ``text`` consists of ("valid", "not valid", "No."), or None."""
    found = [w for w in words(text) if w not in ARTICLES]
    negated = False
    if len(found) == 2 and found[0] in NEGATORS:
        negated, found = True, found[1:]
    if len(found) != 1 or found[0] not in VERDICT_WORDS:
        return None
    axis, sign = VERDICT_WORDS[found[0]]
    return Verdict(axis, -sign if negated else sign, found[0])


def clauses(text: str) -> list[list[str]]:
    """The folded words of ``text`` split into clauses at punctuation and "but"."""
    return [ws for part in _CLAUSE.split(fold(text)) if (ws := _WORD.findall(part))]


def stated_verdicts(text: str, axis: str) -> list[Verdict]:
    """Every verdict on ``axis`` that ``text`` states, each with its sign after negation.

    A negator (``not``, ``never``, "isn't" …) up to :data:`NEGATION_REACH`
    words before the verdict word in the same clause flips it; two flip it back.
    """
    out: list[Verdict] = []
    for clause in clauses(text):
        for i, word in enumerate(clause):
            entry = VERDICT_WORDS.get(word)
            if entry is None or entry[0] != axis:
                continue
            flips = sum(1 for w in clause[max(0, i - NEGATION_REACH) : i] if w in NEGATORS)
            out.append(Verdict(axis, entry[1] * (-1) ** flips, word))
    return out


# ---------------------------------------------------------------- grading


@dataclass(frozen=True, slots=True)
class AnswerKey:
    """A problem's answer and the other forms that count as it."""

    answer: str
    accept: tuple[str, ...] = ()

    @property
    def forms(self) -> tuple[str, ...]:
        """The answer, then each accepted form."""
        return (self.answer, *self.accept)

    @property
    def kind(self) -> GradeKind:
        """How attempts are compared with the answer."""
        if key_verdict(self.answer) is not None:
            return "verdict"
        if key_number(self.answer) is not None:
            return "number"
        return "text"


@dataclass(frozen=True, slots=True)
class Grade:
    """The outcome of one attempt; ``message`` is learner-facing and never holds the key."""

    correct: bool
    kind: GradeKind
    message: str


CORRECT = "Correct."
NOT_YET = "Not yet: have another look at your reasoning."
NO_NUMBER = "Not yet: give your answer as a number."
NO_VERDICT = "Not yet: state your verdict plainly."


def _form_matches(form: str, attempt: str, rel_tol: float) -> bool:
    verdict = key_verdict(form)
    if verdict is not None:
        signs = {v.sign for v in stated_verdicts(attempt, verdict.axis)}
        return signs == {verdict.sign}
    number = key_number(form)
    if number is not None:
        # The unit's own digits ("s^2") are not the learner's result.
        mentions = numbers_in(without_unit(attempt, key_unit(form)))
        # One number, or a final one ("3 + 4 = 7"): the learner's result.
        return bool(mentions) and number_matches(number, mentions[-1], rel_tol)
    wanted = normalise_answer(form)
    return bool(wanted) and normalise_answer(attempt) == wanted


def grade(key: AnswerKey, attempt: str, *, rel_tol: float = 1e-6) -> Grade:
    """Grade ``attempt`` against ``key`` and its accepted forms.

    Correct when any form matches: a verdict form by the verdicts the attempt
    states (exactly the form's, never its opposite), a number form by the
    attempt's last number (within ``rel_tol``), a text form by equal
    normalised text.
    """
    kind = key.kind
    if any(_form_matches(form, attempt, rel_tol) for form in key.forms):
        return Grade(True, kind, CORRECT)
    if kind == "number" and not numbers_in(attempt):
        return Grade(False, kind, NO_NUMBER)
    verdict = key_verdict(key.answer)
    if verdict is not None and not stated_verdicts(attempt, verdict.axis):
        return Grade(False, kind, NO_VERDICT)
    return Grade(False, kind, NOT_YET)
