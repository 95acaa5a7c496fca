"""Typing predictions from headings and recurring phrases."""

from __future__ import annotations

from knowledge.predictions import PhraseIndex

LABELS = [
    (
        "The Varnholm Lighthouse",
        "The lighthouse keeper lit it. The lighthouse keeper slept. A lighthouse keeper.",
    ),
    ("Fishing Fleet", "Herring boats and cod boats. Herring boats sail at dawn. Herring boats."),
    ("Glacier Mechanics", "Ice creep moves glaciers. Ice creep is slow. Ice creep again."),
]


def test_partial_word_completes_to_a_heading() -> None:
    """The word being typed is matched by prefix; the heading comes first."""
    index = PhraseIndex.build(LABELS)
    assert index.predict("tell me about the lightho")[0] == "The Varnholm Lighthouse"
    assert "lighthouse keeper" in index.predict("lighthouse ke")


def test_complete_words_match_by_stem() -> None:
    """After a space, phrases sharing the typed words are offered."""
    index = PhraseIndex.build(LABELS)
    assert "Glacier Mechanics" in index.predict("how do glaciers ")


def test_at_most_five_and_nothing_for_unknown_words() -> None:
    """Never more than five items; unrelated text gets none."""
    labels = [(f"Topic Number {i}", "") for i in range(20)]
    index = PhraseIndex.build(labels)
    assert len(index.predict("topic")) == 5
    assert index.predict("zebra") == []
    assert index.predict("") == []
