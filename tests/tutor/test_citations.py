"""An answer's sources are the passages its text cites by number, and only those."""

from __future__ import annotations

from core.retrieval import Passage
from tutor.citations import answer_sources, cited_numbers

PASSAGES = [
    Passage("Logic", page, f"Heading {page}", f"Text of page {page}.") for page in (2, 5, 9)
]


def test_numbers_lists_and_ranges_are_read() -> None:
    """[2], [1, 3], [1; 2] and [1-3] all cite; each number once, ascending."""
    assert cited_numbers("See [2].", 3) == [2]
    assert cited_numbers("As [3] and [1, 3] say", 3) == [1, 3]
    assert cited_numbers("Both [1; 2].", 3) == [1, 2]
    assert cited_numbers("All of [1-3].", 3) == [1, 2, 3]


def test_a_citation_of_no_given_passage_cites_nothing() -> None:
    """[0], [4] of three passages, and a huge range name no passage."""
    assert cited_numbers("See [0] and [4] and [1-900].", 3) == []
    assert cited_numbers("x[2]y but not (2) or 2.", 3) == [2]


def test_sources_are_the_cited_passages_with_their_numbers() -> None:
    """Citing [3] and an invented [7] lists passage 3 alone, numbered 3, marked cited."""
    sources = answer_sources(PASSAGES, "Validity is about form [3], not content [7].")
    assert [(s["n"], s["page"], s["cited"]) for s in sources] == [(3, 9, True)]


def test_an_answer_citing_nothing_lists_every_passage_uncited() -> None:
    """Without any [n], every passage given is a source, none marked cited."""
    sources = answer_sources(PASSAGES, "From page 2: validity is about form.")
    assert [(s["n"], s["page"], s["cited"]) for s in sources] == [
        (1, 2, False),
        (2, 5, False),
        (3, 9, False),
    ]
