"""Prompts for the explain and hint modes."""

from __future__ import annotations

from typing import Any

from core.retrieval import Passage
from store.store import MessageRecord
from tutor.llm import Prompt
from tutor.prompts import build

VALIDITY = Passage("Thinking Clearly", 2, "Deductive validity", "Validity concerns form.")
CAUSATION = Passage("Thinking Clearly", 5, "Correlation and causation", "Correlation is not proof.")


def message(role: Any, text: str, n: int = 0) -> MessageRecord:
    """A stored message of ``role``."""
    return MessageRecord(id=f"m{n}", session_id="s-1", role=role, text=text, created_at=float(n))


def prompt(**changes: Any) -> Prompt:
    """A prompt built from defaults, with ``changes``."""
    args: dict[str, Any] = {
        "question": "What is validity?",
        "mode": "explain",
        "course": "Logic 101",
        "passages": [VALIDITY, CAUSATION],
        "history": [],
        "hint_level": 0,
    }
    return build(**(args | changes))


def system_text(p: Prompt) -> str:
    """The system message's content."""
    first = p.messages[0]
    assert first["role"] == "system"
    return first["content"]


def material_text(p: Prompt) -> str:
    """The course material message's content: the user message just before the question."""
    material = p.messages[-2]
    assert material["role"] == "user"
    return material["content"]


def test_explain_system_text_asks_for_cited_answer() -> None:
    """Explain mode names the course and asks to answer citing passages."""
    text = system_text(prompt(mode="explain"))
    assert "Logic 101" in text
    assert "Cite the passages" in text
    assert "hint" not in text.lower()


def test_hint_system_text_forbids_the_answer() -> None:
    """Hint mode names the course and forbids stating the final answer."""
    text = system_text(prompt(mode="hint"))
    assert "Logic 101" in text
    assert "Do NOT state the final answer" in text
    assert "Cite the passages" not in text


def test_hint_system_text_counts_hints_from_one() -> None:
    """hint_level 0 is the first hint; each level goes one further."""
    assert "hint number 1" in system_text(prompt(mode="hint", hint_level=0))
    assert "hint number 3" in system_text(prompt(mode="hint", hint_level=2))


def test_both_modes_ask_for_the_math_delimiters_the_ui_renders() -> None:
    """Explain and hint prompts ask for LaTeX between $…$ or \\(…\\), and $$…$$ or \\[…\\]."""
    for mode in ("explain", "hint"):
        text = system_text(prompt(mode=mode))
        assert "mathematics in LaTeX: inline between $ and $ or \\( and \\)" in text
        assert "displayed formula on lines of its own between $$ and $$ or \\[ and \\]" in text
        assert "Never put a formula in backticks" in text


def test_passages_are_numbered_with_their_page() -> None:
    """Passages are listed as [1], [2]… in order, each with document, page, heading and text."""
    text = material_text(prompt())
    first = (
        '<passage n="1" document="Thinking Clearly" page="2" heading="Deductive validity">\n'
        "Validity concerns form.\n</passage>"
    )
    second = (
        '<passage n="2" document="Thinking Clearly" page="5" '
        'heading="Correlation and causation">\nCorrelation is not proof.\n</passage>'
    )
    assert "Validity concerns form." not in system_text(prompt())
    assert first in text
    assert second in text
    assert text.index(first) < text.index(second)


def test_no_passages_says_so() -> None:
    """Without passages the system text says that nothing matched."""
    text = system_text(prompt(passages=[]))
    assert "No course passage matched this question." in text
    assert "[1]" not in text


def test_history_maps_roles_in_order() -> None:
    """Learner messages become user turns, tutor messages assistant turns, oldest first."""
    history = [
        message("learner", "What is an argument?", 1),
        message("tutor", "Premises and a conclusion.", 2),
        message("learner", "And validity?", 3),
    ]
    turns = [(m["role"], m["content"]) for m in prompt(history=history).messages[1:-2]]
    assert turns == [
        ("user", "What is an argument?"),
        ("assistant", "Premises and a conclusion."),
        ("user", "And validity?"),
    ]


def test_history_skips_empty_messages() -> None:
    """Messages without text (e.g. a cancelled answer) are left out."""
    history = [message("learner", "Hi", 1), message("tutor", "", 2)]
    turns = [m["role"] for m in prompt(history=history).messages[1:-2]]
    assert turns == ["user"]


def test_question_is_the_last_user_message() -> None:
    """The question comes last, as a user message, after the history."""
    p = prompt(question="Is this valid?", history=[message("tutor", "Earlier answer.", 1)])
    assert p.messages[-1] == {"role": "user", "content": "Is this valid?"}
    assert len(p.messages) == 4


def test_prompt_carries_its_inputs() -> None:
    """The built prompt keeps question, mode, course, passages and hint level for providers."""
    p = prompt(mode="hint", hint_level=2)
    assert p.question == "What is validity?"
    assert p.mode == "hint"
    assert p.course == "Logic 101"
    assert p.passages == [VALIDITY, CAUSATION]
    assert p.hint_level == 2
    assert p.continuation == ""
