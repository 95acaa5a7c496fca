"""The bundled demo course and its lexical retriever."""

from __future__ import annotations

import pytest

from core.retrieval import Passage
from core.text import terms
from knowledge.demo_course import DEMO_COURSE, demo_passages, demo_retriever
from knowledge.lexical import LexicalRetriever


@pytest.fixture(scope="module")
def retriever() -> LexicalRetriever:
    return demo_retriever()


def test_demo_course_has_pages_one_to_eight() -> None:
    """The demo course has passages on pages 1 to 8, each page with one non-empty heading."""
    passages = demo_passages()
    headings: dict[int, set[str]] = {}
    for passage in passages:
        headings.setdefault(passage.page, set()).add(passage.heading)
    assert sorted(headings) == list(range(1, 9))
    for page, names in headings.items():
        assert len(names) == 1, page
        assert all(name.strip() for name in names)


def test_demo_passages_are_paragraphs() -> None:
    """Passages are non-empty paragraphs, never the page heading lines."""
    for passage in demo_passages():
        assert passage.text.strip()
        assert not passage.text.startswith("#")
        assert "\n\n" not in passage.text


def test_retriever_knows_the_demo_course(retriever: LexicalRetriever) -> None:
    """The demo retriever lists exactly the demo course."""
    assert retriever.courses() == [DEMO_COURSE]


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("What makes a deductive argument valid?", 2),
        ("What is validity?", 2),
        ("Does correlation prove causation?", 5),
        ("What is a straw man fallacy?", 6),
        ("How do I weigh evidence from a source?", 4),
    ],
)
async def test_ranks_the_right_page_first(
    retriever: LexicalRetriever, question: str, page: int
) -> None:
    """The passage that answers the question comes first."""
    found = await retriever.retrieve(DEMO_COURSE, question, 4)
    assert found
    assert found[0].page == page


async def test_results_are_best_first_with_positive_scores(retriever: LexicalRetriever) -> None:
    """Results carry positive scores in descending order."""
    found = await retriever.retrieve(DEMO_COURSE, "evidence for a causal claim", 8)
    scores = [p.score for p in found]
    assert scores
    assert all(s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)


async def test_unknown_course_is_empty(retriever: LexicalRetriever) -> None:
    """A course the retriever does not know gives no passages."""
    assert await retriever.retrieve("physics-101", "What is validity?", 4) == []


@pytest.mark.parametrize("question", ["xyzzy plugh frobnicate", "", "what is the of and"])
async def test_question_without_course_words_is_empty(
    retriever: LexicalRetriever, question: str
) -> None:
    """A question sharing no (non-stop) word with the course gives no passages."""
    assert await retriever.retrieve(DEMO_COURSE, question, 4) == []


@pytest.mark.parametrize("k", [1, 2, 3])
async def test_k_is_respected(retriever: LexicalRetriever, k: int) -> None:
    """At most k passages come back, even when more match."""
    question = "argument premises conclusion evidence"
    assert len(await retriever.retrieve(DEMO_COURSE, question, 10)) > 3
    assert len(await retriever.retrieve(DEMO_COURSE, question, k)) == k


async def test_custom_courses_are_kept_apart() -> None:
    """A retriever over several courses searches only the course asked for."""
    retriever = LexicalRetriever(
        {
            "bio": [Passage("Bio", 1, "Cells", "Mitochondria make energy for the cell.")],
            "chem": [Passage("Chem", 3, "Bonds", "Covalent bonds share electrons.")],
        }
    )
    assert retriever.courses() == ["bio", "chem"]
    assert await retriever.retrieve("chem", "mitochondria energy", 4) == []
    found = await retriever.retrieve("bio", "mitochondria energy", 4)
    assert [(p.document, p.page) for p in found] == [("Bio", 1)]


def test_terms_drop_stop_words_and_stem() -> None:
    """terms() lower-cases, drops stop words and strips plural and -ing/-ed endings."""
    assert terms("What are the Premises of arguments?") == ["premis", "argument"]
    assert terms("weighing tested claims") == ["weigh", "test", "claim"]


async def test_index_version_changes_only_with_the_content() -> None:
    """The index version is stable for the same passages and differs when the text changes."""
    page = Passage("Bio", 1, "Cells", "Mitochondria make energy for the cell.")
    edited = Passage("Bio", 1, "Cells", "Mitochondria make ATP for the cell.")
    first = LexicalRetriever({"bio": [page]})
    again = LexicalRetriever({"bio": [page]})
    changed = LexicalRetriever({"bio": [edited]})
    version = await first.index_version("bio")
    assert version and version == await again.index_version("bio")
    assert version != await changed.index_version("bio")
    assert await first.index_version("unknown") == ""
