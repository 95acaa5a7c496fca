"""Prompts for the tutoring modes.

``explain`` answers from the course passages and cites them; ``hint``
guides with questions and steps and never states the final answer. The
hint level, kept per session, lets each further hint go one step further.
"""

from __future__ import annotations

from core.retrieval import Passage
from realtime.protocol import Mode
from store.store import MessageRecord
from tutor.llm import ChatMessage, Prompt

_EXPLAIN = (
    "You are LiveTutor, a patient tutor for the course “{course}”. Answer the learner's "
    "question using the course passages below. Cite the passages you use as [n] with "
    "their page. If the passages do not cover the question, say so plainly and answer "
    "only what you are sure of. Be concise and clear; use Markdown."
)
_HINT = (
    "You are LiveTutor, a Socratic tutor for the course “{course}”. The learner wants a "
    "hint, not the answer. Do NOT state the final answer or solve the problem. Guide "
    "them with one or two questions and a few small steps, pointing to the course "
    "passages below by [n] and page. This is hint number {level} in this session: "
    "each further hint may go one step further, but never hand over the answer."
)
_NO_PASSAGES = "No course passage matched this question."


def build(
    *,
    question: str,
    mode: Mode,
    course: str,
    passages: list[Passage],
    history: list[MessageRecord],
    hint_level: int,
    continuation: str = "",
) -> Prompt:
    """The prompt for one question: system text with passages, recent history, the question."""
    system = (_HINT if mode == "hint" else _EXPLAIN).format(course=course, level=hint_level + 1)
    if passages:
        listed = "\n\n".join(
            f"[{i}] {p.document}, page {p.page}, “{p.heading}”:\n{p.text}"
            for i, p in enumerate(passages, start=1)
        )
    else:
        listed = _NO_PASSAGES
    messages: list[ChatMessage] = [
        {"role": "system", "content": f"{system}\n\nCourse passages:\n\n{listed}"}
    ]
    for m in history:
        if m.text:
            if m.role == "learner":
                messages.append({"role": "user", "content": m.text})
            else:
                messages.append({"role": "assistant", "content": m.text})
    messages.append({"role": "user", "content": question})
    return Prompt(
        question=question,
        mode=mode,
        course=course,
        messages=messages,
        passages=passages,
        hint_level=hint_level,
        continuation=continuation,
    )
