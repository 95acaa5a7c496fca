"""Which course passages an answer cites: ``[n]`` in its text, checked against the prompt.

The prompt numbers the passages it gives the model ``[1]`` to ``[k]``
(:func:`tutor.prompts.course_material`). An answer's ``sources`` are the passages
its text cites by those numbers; a citation that names no given passage (``[9]``
when four were given, ``[0]``) cites nothing. An answer that cites no passage at
all (the offline tutor quotes by page instead; some models never cite) lists
every passage it was given, each marked ``cited: false``. Each source carries
its number ``n``, so ``[2]`` in the text and source 2 are the same passage.
"""

from __future__ import annotations

import re
from typing import Any

from core.retrieval import Passage

# [2], [1, 3], [2; 4], [1-3] (a range), each number 1 to 3 digits.
_CITATION = re.compile(r"\[(\d{1,3}(?:\s*(?:[,;]|-|\u2013)\s*\d{1,3})*)\]")
_PART = re.compile(r"(\d{1,3})(?:\s*[-\u2013]\s*(\d{1,3}))?")
# A range longer than this is not a citation ([1-999] in a formula, say).
_MAX_RANGE = 10


def cited_numbers(text: str, given: int) -> list[int]:
    """The passage numbers ``text`` cites that name one of the ``given`` passages, ascending."""
    found: set[int] = set()
    for match in _CITATION.finditer(text):
        for part in _PART.finditer(match.group(1)):
            low = int(part.group(1))
            high = int(part.group(2)) if part.group(2) else low
            if high < low or high - low > _MAX_RANGE:
                continue
            found.update(n for n in range(low, high + 1) if 1 <= n <= given)
    return sorted(found)


def answer_sources(passages: list[Passage], text: str) -> list[dict[str, Any]]:
    """The ``sources`` of an answer: the passages it cites, or all it was given if it cites none."""
    cited = cited_numbers(text, len(passages))
    numbered = [(n, passage) for n, passage in enumerate(passages, start=1)]
    if cited:
        return [
            {**passage.source(), "n": n, "cited": True} for n, passage in numbered if n in cited
        ]
    return [{**passage.source(), "n": n, "cited": False} for n, passage in numbered]
