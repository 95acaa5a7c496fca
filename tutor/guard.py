"""The stream guard: text reaches a learner in hint mode only once it gives nothing away.

:class:`LeakCheck` says whether a piece of text gives away a problem's
answer, and why; :class:`SentenceGate` sits on the model's token stream,
holds text back until a sentence is complete, checks it together with what
was already released, and releases it or withholds it (with a safe text in
its place). After ``max_withheld`` withheld sentences it asks for the model
call to stop. The rules, precisely, are in docs/pedagogy.md ("The guard").

What counts as giving the answer away, per form of the key (the answer, each
accepted form, or the private reference answer):

- text: the form's normalised words appear as whole words in the text's
  normalised words (``answer``, ``accepted_form``, ``reference``). A form of
  one or two characters, or a very common word, counts only where it is
  named as an option: "(b)", "b)", "option b", "the answer is b", or alone.
- number: any reading of a number in the text equals the form's value within
  the tolerance, whatever the notation ("0.5", "1/2", "50%", "\\frac{1}{2}",
  "half"), page and step numbers included; only list markers ("2." at the
  start of a line) are structure, not content.
- verdict: the text asserts a verdict on the key's axis, either way ("it is
  valid" and "it is not valid" both count: stating a verdict is the answer).
  Not counted: clauses of genuine questions ("Is it valid?", but "Isn't it
  valid?", "So it's valid?" and "Why is it valid?" count); clauses under
  "whether", "if", "when", "unless", "suppose", "assume", "imagine",
  "either", "check", …; clauses offering alternatives with "or" ("valid or
  invalid"); general statements ("a valid argument can have false premises",
  "an argument is valid when …", but "this is a valid argument" and "this is
  an example of an invalid inference" count); "yes"
  and "no" anywhere but the first or last word of their clause.
- obfuscated: any of the above found after undoing letter spacing ("v a l i d",
  "v-a-l-i-d"), separators inside a word ("val-id"), hyphenation across lines,
  or reversal ("dilav"), for forms and verdict words of at least four letters;
  and a text form spelled by consecutive words ("mito chon dria") none of
  which is a common word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sentencex import segment  # type: ignore[import-untyped]

from tutor.grading import (
    ARTICLES,
    NEGATORS,
    VERDICT_WORDS,
    AnswerKey,
    NumberMention,
    clauses,
    fold,
    key_number,
    key_unit,
    key_verdict,
    normalise_answer,
    number_matches,
    numbers_in,
    stated_verdicts,
    without_unit,
    words,
)

LeakReason = str  # "answer", "accepted_form", "reference", "verdict", "number", "obfuscated"


def _set(text: str) -> frozenset[str]:
    """The space-separated words of ``text``."""
    return frozenset(text.split())


# Forms and verdict words shorter than this are not searched for in spaced or reversed
# text: "on" reversed is "no", and every text is full of short words.
MIN_OBFUSCATED_CHARS = 4
# A form this short, or one of these words, counts only where it is named as an option.
SHORT_FORM_CHARS = 2
COMMON_WORDS = _set(
    "a an and are as at be but by can do for from has have he her his i if in is it "
    "its me my no of on one or our she so than that the their them then there they "
    "this to two up us was we what when which who why will with yes you your"
)
_OPTION_CUES = frozenset({"option", "choice", "answer", "letter", "pick", "choose", "select"})
# Words that make a clause hypothetical or open: a verdict word after them is not asserted.
_OPEN_MARKERS = _set(
    "whether if when whenever unless suppose supposing assume assuming imagine either "
    "decide determine check"
)
_GENERIC_DETERMINERS = frozenset({"a", "an", "any", "every", "each", "all", "some"})
# Words that point at this problem: a clause holding one is not a general statement.
_SPECIFIC = _set("this that these those it its your yours here our")
_COPULAS = frozenset(
    {"is", "are", "was", "were", "be", "been", "being", "s", "seems", "looks", "remains"}
)
# A clause of a question that starts with one of these asks rather than tells ("why"
# is left out: "why is it valid?" takes the verdict for granted).
_QUESTION_OPENERS = _set(
    "is are was were do does did can could would will should shall may might must has "
    "have had what which how when where who whom whose whether"
)
# The yes/no words of the affirm axis: they count only at a clause's edge.
_YES_NO = _set("yes yeah yep yup no nope nah")
_SENTENCE_END = re.compile(r"(?<=[.!?\n])")
_LETTER_RUN = re.compile(r"(?<![^\W\d_])[^\W\d_](?:[\W_]{1,3}[^\W\d_](?![^\W\d_])){2,}(?![^\W\d_])")
_INNER_SEPARATOR = re.compile(r"(?<=[^\W\d_])[-_*.'`~·|\u2010-\u2015]+(?=[^\W\d_])")
_LINE_HYPHEN = re.compile(r"(?<=[^\W\d_])-[ \t]*\n\s*(?:[-*+]\s+)?(?=[^\W\d_])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]\s+)?\d+[.)]\s")


def _despaced(text: str) -> str:
    """Letter-spaced runs ("v a l i d", "v-a-l-i-d") joined, separators inside words removed.

    A word hyphenated across a line break or list items ("mito-\\n- chondria") is joined.
    """
    text = _LINE_HYPHEN.sub("", text)
    joined = _LETTER_RUN.sub(lambda m: "".join(ch for ch in m.group(0) if ch.isalpha()), text)
    return _INNER_SEPARATOR.sub("", joined)


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _asks(clause: list[str]) -> bool:
    """True for a clause of a question that asks rather than leads ("is it valid").

    "isn't it valid" leads (a negation in its first words), and so does a
    statement with a question mark ("so it's valid?").
    """
    return clause[0] in _QUESTION_OPENERS and not any(w in NEGATORS for w in clause[1:3])


def _asserts_verdict(text: str, axis: str, *, min_chars: int = 0) -> bool:
    """True when ``text`` asserts a verdict on ``axis``, either way (rules in the module doc)."""
    for sentence in _sentences(text):
        sentence_words = words(sentence)
        if not sentence_words:
            continue
        asks = sentence.rstrip().endswith("?")
        for clause in clauses(sentence):
            if asks and _asks(clause):
                continue
            counted = [
                i
                for i, word in enumerate(clause)
                if _counts(clause, i, axis) and len(word) >= min_chars
            ]
            # "valid or invalid", "valid or not": alternatives, no verdict.
            if counted and "or" not in clause:
                return True
    return False


def _counts(clause: list[str], i: int, axis: str) -> bool:
    """True when ``clause[i]`` is a verdict word on ``axis`` that the clause asserts."""
    entry = VERDICT_WORDS.get(clause[i])
    if entry is None or entry[0] != axis:
        return False
    if any(w in _OPEN_MARKERS for w in clause[:i]):
        return False
    if clause[i] in _YES_NO and 0 < i < len(clause) - 1:
        return False
    before = clause[i - 1] if i else ""
    # "a valid argument can …" is general; "this is an example of an invalid
    # inference" is not: a word pointing at this problem comes first.
    if (
        before in _GENERIC_DETERMINERS
        and (i < 2 or clause[i - 2] not in _COPULAS)
        and not _names_problem(clause[: i - 1])
    ):
        return False
    # A general statement: "an argument is valid when …", "every such proof is sound".
    return not (clause[0] in _GENERIC_DETERMINERS and not _names_problem(clause[1:i]))


def _names_problem(clause_words: list[str]) -> bool:
    """True when one of ``clause_words`` points at this problem ("this", "your", "it" …)."""
    return any(w in _SPECIFIC for w in clause_words)


def _is_list_marker(folded: str, mention: NumberMention) -> bool:
    """True when the number is a list marker ("2. " or "- 2) " at the start of a line)."""
    line_start = folded.rfind("\n", 0, mention.start) + 1
    return _LIST_MARKER.match(folded[line_start : mention.end + 2]) is not None and not (
        folded[line_start : mention.start].strip(" -*+")
    )


def _has_words(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


@dataclass(frozen=True, slots=True)
class _Form:
    text: str
    reason: LeakReason


class LeakCheck:
    """Whether text gives away a key, any of its accepted forms or a private reference answer."""

    def __init__(
        self,
        key: AnswerKey | None,
        *,
        reference: str | None = None,
        rel_tol: float = 1e-6,
    ) -> None:
        forms: list[_Form] = []
        if key is not None:
            forms.append(_Form(key.answer, "answer"))
            forms += [_Form(a, "accepted_form") for a in key.accept]
        if reference is not None:
            forms += [_Form(f, "reference") for f in reference_forms(reference)]
        self._forms = [f for f in forms if words(f.text)]
        self._rel_tol = rel_tol

    @property
    def empty(self) -> bool:
        """True when there is nothing to guard against."""
        return not self._forms

    def leaks(self, text: str) -> LeakReason | None:
        """Why ``text`` gives the answer away, or None when it does not."""
        for form in self._forms:
            reason = self._plain(form, text)
            if reason is not None:
                return reason
        for form in self._forms:
            if self._obfuscated(form, text):
                return "obfuscated"
        return None

    def _plain(self, form: _Form, text: str) -> LeakReason | None:
        verdict = key_verdict(form.text)
        if verdict is not None:
            return "verdict" if _asserts_verdict(text, verdict.axis) else None
        number = key_number(form.text)
        if number is not None:
            folded = without_unit(text, key_unit(form.text))
            for mention in numbers_in(folded):
                if not _is_list_marker(folded, mention) and number_matches(
                    number, mention, self._rel_tol
                ):
                    return "number"
            return None
        return form.reason if self._words_match(form.text, text) else None

    def _words_match(self, form: str, text: str) -> bool:
        needle = normalise_answer(form).split()
        haystack = [w for w in words(text) if w not in ARTICLES]
        if len(needle) == 1 and (len(needle[0]) <= SHORT_FORM_CHARS or needle[0] in COMMON_WORDS):
            return _named_as_option(needle[0], text)
        return _has_words(haystack, needle)

    def _obfuscated(self, form: _Form, text: str) -> bool:
        folded = fold(text)
        variants = [_despaced(folded), folded[::-1], _despaced(folded)[::-1]]
        verdict = key_verdict(form.text)
        if verdict is not None:
            return any(
                _asserts_verdict(v, verdict.axis, min_chars=MIN_OBFUSCATED_CHARS) for v in variants
            )
        if key_number(form.text) is not None:
            return False
        if sum(ch.isalnum() for ch in form.text) < MIN_OBFUSCATED_CHARS:
            return False
        squashed = "".join(normalise_answer(form.text).split())
        return any(
            self._words_match(form.text, v) or _split_across_words(squashed, words(v))
            for v in [folded, *variants]
        )


def _split_across_words(squashed: str, text_words: list[str]) -> bool:
    """True when consecutive whole words of the text spell ``squashed`` ("mito chon dria").

    A common word among the pieces makes it ordinary text: "is land" is not "island".
    """
    for i in range(len(text_words)):
        joined = ""
        for word in text_words[i:]:
            if word in COMMON_WORDS:
                break
            joined += word
            if not squashed.startswith(joined):
                break
            if joined == squashed:
                return True
    return False


def _named_as_option(word: str, text: str) -> bool:
    """True when a one-letter or common-word form is named as an answer option in ``text``."""
    folded = fold(text)
    for sentence in _sentences(folded):
        # "(b)" or "b)" names an option, unless the sentence lists several: "(a), (b) or (c)".
        named = {m.group(1) or m.group(2) for m in _OPTION_MARK.finditer(sentence)}
        if named == {word}:
            return True
        ws = [w for w in words(sentence) if w not in ARTICLES or w == word]
        if ws == [word]:
            return True
        for i, w in enumerate(ws):
            if w == word and any(c in _OPTION_CUES for c in ws[max(0, i - 3) : i]):
                return True
    return False


_OPTION_MARK = re.compile(r"\(\s*([^\W_]{1,2})\s*\)|(?<![^\W_])([^\W_]{1,2})\)")
_ANSWER_LINE = re.compile(r"(?im)^\W*(?:final\s+)?answer\s*[:=\-]\s*(.+?)\s*$")
_MAX_REFERENCE_WORDS = 8


def reference_forms(text: str) -> tuple[str, ...]:
    """The short answers to guard against, from a model's private reference answer.

    The answer is the text of an "Answer: …" line when there is one, else the
    whole text. From it: each verdict it states on an axis, one way only
    ("valid but unsound" gives both; a "yes" beside a specific verdict is
    left out); else its last number; else the answer
    itself when it is at most eight words. Empty when nothing short enough
    can be told apart.
    """
    line = _ANSWER_LINE.search(text)
    answer = line.group(1) if line is not None else text
    if key_verdict(answer) is not None or key_number(answer) is not None:
        return (answer,)
    forms: dict[str, str] = {}
    for axis in dict.fromkeys(a for a, _ in VERDICT_WORDS.values()):
        stated = stated_verdicts(answer, axis)
        if stated and len({v.sign for v in stated}) == 1:
            v = stated[0]
            forms[axis] = v.word if VERDICT_WORDS[v.word][1] == v.sign else f"not {v.word}"
    if len(forms) > 1:
        # "Yes, it's valid": the specific verdict says it; guarding every "true" and
        # "correct" as well would hold back ordinary hints.
        forms.pop("affirm", None)
    if forms:
        return tuple(forms.values())
    mentions = numbers_in(answer)
    if mentions:
        last = mentions[-1]
        return (fold(answer)[last.start : last.end],)
    if 0 < len(words(answer)) <= _MAX_REFERENCE_WORDS:
        return (answer,)
    return ()


# ---------------------------------------------------------------- the gate


@dataclass(frozen=True, slots=True)
class Release:
    """Text to send to the learner."""

    text: str


@dataclass(frozen=True, slots=True)
class Withhold:
    """A sentence kept back: ``replacement_text`` goes to the learner, ``text`` never does.

    ``stop`` is set on the withhold that reaches ``max_withheld``: the caller
    cancels the model call.
    """

    reason: LeakReason
    replacement_text: str
    text: str
    stop: bool = False


GateEvent = Release | Withhold


class GateClosed(RuntimeError):
    """Text was fed to a gate after :meth:`SentenceGate.close`."""


# A piece with fewer words of two or more letters than this waits for the next one, so
# an answer spelled a letter or a word per line is checked whole.
MIN_PIECE_WORDS = 2
_REAL_WORD = re.compile(r"[^\W_]{2,}")
_TRAILING_SPACE = re.compile(r"\s*$")


def _split_line(line: str) -> list[str]:
    """A line's sentences, whitespace kept: their concatenation is the line."""
    pieces = [s for s in segment("en", line) if s]
    return pieces if "".join(pieces) == line else [line]


class SentenceGate:
    """Releases a stream of text a sentence at a time, after a :class:`LeakCheck`.

    Text is held until a sentence ends (a line break, or a boundary the
    sentence segmenter sees, which knows abbreviations and decimals such as
    3.5); each sentence is checked together with the last ``context_chars``
    of released text, so an answer split across sentences is caught too.
    Latency is one sentence at most, more only for fragments of fewer than
    :data:`MIN_PIECE_WORDS` words, which wait for the next sentence.
    """

    def __init__(
        self,
        check: LeakCheck,
        *,
        replacement: str,
        max_withheld: int = 2,
        context_chars: int = 400,
    ) -> None:
        if max_withheld < 1:
            raise ValueError("max_withheld must be at least 1")
        self._check = check
        # The replacement reaches the learner: it must not give the answer away itself.
        self._replacement = replacement if check.leaks(replacement) is None else FALLBACK_NOTE
        self._max_withheld = max_withheld
        self._context_chars = context_chars
        self._pending = ""
        self._released = ""
        self._withheld = 0
        self._last_withheld = False
        self._closed = False

    @property
    def withheld(self) -> int:
        """Sentences withheld so far."""
        return self._withheld

    @property
    def stopped(self) -> bool:
        """True once ``max_withheld`` sentences were withheld: further text is dropped."""
        return self._withheld >= self._max_withheld

    def feed(self, text: str) -> list[GateEvent]:
        """Take more of the stream; returns what the complete sentences in it became."""
        if self._closed:
            raise GateClosed("the gate is closed")
        if self.stopped:
            return []
        self._pending += text
        return self._drain(final=False)

    def close(self) -> list[GateEvent]:
        """The stream ended: check and hand out whatever is left."""
        if self._closed:
            return []
        events = [] if self.stopped else self._drain(final=True)
        self._closed = True
        self._pending = ""
        return events

    def _drain(self, *, final: bool) -> list[GateEvent]:
        pieces = self._complete_pieces(final)
        events: list[GateEvent] = []
        unit = ""
        for i, piece in enumerate(pieces):
            unit += piece
            last = i == len(pieces) - 1
            if len(_REAL_WORD.findall(unit)) < MIN_PIECE_WORDS and unit.strip() and not last:
                continue
            if len(_REAL_WORD.findall(unit)) < MIN_PIECE_WORDS and unit.strip() and not final:
                break
            events.append(self._judge(unit))
            unit = ""
            if self.stopped:
                self._pending = ""
                return events
        self._pending = unit + self._pending
        return events

    def _complete_pieces(self, final: bool) -> list[str]:
        """Takes the complete sentences off the front of the pending text."""
        text = self._pending
        cut = len(text) if final else text.rfind("\n") + 1
        pieces: list[str] = []
        for line in text[:cut].splitlines(keepends=True):
            pieces += _split_line(line)
        rest = text[cut:]
        if not final and rest:
            tail = _split_line(rest)
            # The last sentence of an unfinished line may still grow.
            pieces += tail[:-1]
            rest = tail[-1]
        self._pending = "" if final else rest
        return pieces

    def _judge(self, unit: str) -> GateEvent:
        context = self._released[-self._context_chars :]
        reason = self._check.leaks(context + unit)
        if reason is not None and self._check.leaks(context) is not None:
            reason = self._check.leaks(unit)
        if reason is None:
            self._released += unit
            self._last_withheld = False
            return Release(unit)
        self._withheld += 1
        space = _TRAILING_SPACE.search(unit)
        trailing = space.group(0) if space else ""
        note = trailing if self._last_withheld else self._replacement + (trailing or " ")
        self._last_withheld = True
        return Withhold(reason, note, unit, stop=self.stopped)


FALLBACK_NOTE = "(The tutor kept this back: it would give the answer away.)"
