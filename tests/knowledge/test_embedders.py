"""The embedders: unit vectors, meaning for MiniLM, words for hashing, pinned model files."""

from __future__ import annotations

import numpy as np
import pytest

from core.settings import SettingsError
from knowledge import embedders
from knowledge.embedders import HashingEmbedder, MiniLMEmbedder

SAME = "A valid argument has premises that guarantee its conclusion."
PARAPHRASE = "If the premises are true, a valid argument's conclusion cannot be false."
OTHER = "Glaciers move because ice deforms under its own weight."


@pytest.mark.parametrize(
    "embedder", [HashingEmbedder(), MiniLMEmbedder()], ids=["hashing", "minilm"]
)
def test_vectors_are_unit_length(embedder: embedders.Embedder) -> None:
    """Every vector has length 1 and the embedder's dimension."""
    vectors = np.array(embedder.embed([SAME, OTHER, ""]))
    assert vectors.shape[1] == embedder.dimensions
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)


def test_minilm_sees_paraphrases() -> None:
    """A paraphrase is much closer than an unrelated sentence."""
    same, para, other = np.array(MiniLMEmbedder().embed([SAME, PARAPHRASE, OTHER]))
    assert same @ para > 0.6
    assert same @ other < 0.2


def test_minilm_matches_the_reference_model_closely() -> None:
    """Known similarities of all-MiniLM-L6-v2 are reproduced (int8 export, mean pooling)."""
    a, b = np.array(MiniLMEmbedder().embed(["A man is eating food.", "A man is eating a meal."]))
    assert 0.85 < a @ b < 0.98


def test_hashing_is_lexical() -> None:
    """Shared words score high; the same text always gives the same vector."""
    h = HashingEmbedder()
    same, para, other = np.array(h.embed([SAME, SAME, OTHER]))
    assert same @ para == pytest.approx(1.0)
    assert same @ other < 0.1


def test_minilm_refuses_a_modified_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model or tokenizer file that does not match its pinned hash is refused."""
    monkeypatch.setattr(embedders, "MINILM_TOKENIZER_SHA256", "0" * 64)
    with pytest.raises(SettingsError, match="pinned sha256"):
        MiniLMEmbedder()
