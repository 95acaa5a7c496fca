"""Ranking: score fusion, near-duplicate removal, and the "not covered" judgement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.relevance import rare_words, unknown_rare_word
from knowledge.retriever import (
    SEMANTIC_WEIGHT,
    CourseRetriever,
    drop_near_duplicates,
    fuse_scores,
)
from knowledge.vectors import Hit
from tests.support.harbour import harbour_retriever


def hit(i: str, text: str = "", cosine: float = 0.5) -> Hit:
    return Hit(
        i, "doc", "Doc", 1, "", text or f"unique text number {i} about things {i}", 1 - cosine
    )


def test_fusion_rewards_agreement() -> None:
    """A chunk both rankings find beats one that only one ranking puts first."""
    semantic = [hit("a", cosine=0.62), hit("b", cosine=0.60), hit("c", cosine=0.40)]
    lexical = [hit("d", cosine=0.30), hit("b", cosine=0.28), hit("e", cosine=0.10)]
    ranked = fuse_scores(semantic, lexical)
    assert ranked[0][1].id == "b"
    assert sorted(h.id for _, h in ranked) == ["a", "b", "c", "d", "e"]


def test_fusion_scores_a_missing_ranking_at_its_lowest_cosine() -> None:
    """A chunk one ranking did not return gets that ranking's lowest cosine, no more."""
    ranked = dict((h.id, s) for s, h in fuse_scores([hit("a", cosine=0.5)], [hit("b", cosine=0.2)]))
    assert ranked["a"] == pytest.approx(SEMANTIC_WEIGHT * 0.5 + (1 - SEMANTIC_WEIGHT) * 0.2)
    assert ranked["b"] == pytest.approx(SEMANTIC_WEIGHT * 0.5 + (1 - SEMANTIC_WEIGHT) * 0.2)


def test_near_duplicates_are_dropped() -> None:
    """Overlapping neighbours saying the same thing count once."""
    text = "the lighthouse was built in 1847 by the engineer matilda crane from granite"
    ranked = [(3.0, hit("a", text)), (2.0, hit("b", text + " blocks")), (1.0, hit("c"))]
    assert [h.id for _, h in drop_near_duplicates(ranked, 2)] == ["a", "c"]


def test_a_rare_word_the_course_never_uses_is_found() -> None:
    """A name absent from every passage is reported; common words and misspellings are not."""
    passages = ["Euthanasia is the ending of a life to avoid suffering.", "A boat on the sea."]
    assert unknown_rare_word("what did kierkegaard say about faith", passages) == "kierkegaard"
    assert unknown_rare_word("is euthenasia ever ok", passages) == ""
    assert unknown_rare_word("is it legit to sail a boat", passages) == ""


def test_a_misspelled_rare_word_is_respelled_as_the_passages_spell_it() -> None:
    """A rare word close to a passage's word is a misspelling of it, not an unknown word."""
    passages = ["Euthanasia is the ending of a life to avoid suffering."]
    assert rare_words("is euthenasia ever ok", passages) == ({"euthenasia": "euthanasia"}, [])


@pytest.fixture
def harbour(tmp_path: Path) -> Iterator[CourseRetriever]:
    """A course of three pages, indexed with MiniLM and the lexical embedder."""
    retriever = harbour_retriever(tmp_path)
    yield retriever
    retriever.close()
    retriever.kb.close()


def test_a_question_the_course_answers_is_covered(harbour: CourseRetriever) -> None:
    """The page on knots answers a question about knots, and says it covers it."""
    passages = harbour.search("harbour", "which knot makes a loop that won't slip?", 2)
    assert passages[0].page == 2
    assert passages[0].covers


def test_a_misspelled_question_finds_its_page(harbour: CourseRetriever) -> None:
    """A badly spelled key word still reaches the page that spells it right."""
    passages = harbour.search("harbour", "what is a bowlnie knot", 1)
    assert passages[0].page == 2
    assert passages[0].covers


def test_a_question_off_the_course_is_not_covered(harbour: CourseRetriever) -> None:
    """An unrelated question still gets the nearest pages, each marked as not covering it."""
    passages = harbour.search("harbour", "how many calories are in a banana", 2)
    assert passages
    assert not any(p.covers for p in passages)


def test_a_rewritten_query_is_ranked_in_place_of_the_question(harbour: CourseRetriever) -> None:
    """A vector and lexical text given to the search (a model's rewrite) rank the pages."""
    question = "how do i know a storm is coming?"
    rewrite = "tie a bowline loop in the rope"
    assert harbour.search("harbour", question, 1)[0].page == 3
    vector = harbour.embedder.embed([rewrite])[0]
    passages = harbour.search("harbour", question, 1, vector=vector, words=rewrite)
    assert passages[0].page == 2


def test_both_rankings_are_handed_out_before_fusion(harbour: CourseRetriever) -> None:
    """``rankings`` gives each ranking's candidates and the rare words none of them uses."""
    assert harbour.rankings("harbour", "which knot makes a loop", 3).unknown == []
    found = harbour.rankings("harbour", "what did kierkegaard say about a bowline knot", 3)
    assert found.lexical is not None
    assert found.semantic[0].page == 2
    assert found.lexical[0].page == 2
    assert found.unknown == ["kierkegaard"]
