"""Ranking: reciprocal rank fusion and near-duplicate removal."""

from __future__ import annotations

from knowledge.retriever import drop_near_duplicates, fuse
from knowledge.vectors import Hit


def hit(i: str, text: str = "") -> Hit:
    return Hit(i, "doc", "Doc", 1, "", text or f"unique text number {i} about things {i}", 0.1)


def test_fusion_rewards_agreement() -> None:
    """A chunk ranked well by both rankings beats one ranked first by only one."""
    ranked = fuse([[hit("a"), hit("b"), hit("c")], [hit("d"), hit("b"), hit("e")]])
    assert ranked[0][1].id == "b"
    assert sorted(h.id for _, h in ranked) == ["a", "b", "c", "d", "e"]


def test_near_duplicates_are_dropped() -> None:
    """Overlapping neighbours saying the same thing count once."""
    text = "the lighthouse was built in 1847 by the engineer matilda crane from granite"
    ranked = [(3.0, hit("a", text)), (2.0, hit("b", text + " blocks")), (1.0, hit("c"))]
    assert [h.id for _, h in drop_near_duplicates(ranked, 2)] == ["a", "c"]
