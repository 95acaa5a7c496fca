"""The server's exceptions: one root, a small tree.

    LiveTutorError
    ├── SettingsError          (core.settings) a setting cannot be used
    ├── BusUnavailable         the shared backplane (Redis) cannot be reached
    ├── SharedUnavailable      the cache's shared tier (Redis) cannot be reached
    ├── AuthError              a token is missing, expired, forged or lacks a right
    ├── StoreError             the database failed or refused
    │   ├── SessionForbidden   the session belongs to another user
    │   └── SessionCourseMismatch  the session belongs to another course
    ├── LLMError               the language model did not produce an answer
    │   ├── LLMUnavailable     connection refused or dropped, HTTP 429/5xx
    │   │   ├── LLMTimeout     no first token, or a stall between tokens
    │   │   └── CircuitOpen    failing fast after repeated failures
    │   └── LLMRejected        the endpoint refused the request (HTTP 4xx)
    └── KnowledgeError         a course document could not be stored or indexed
        ├── DocumentRejected   permanent: not a PDF, encrypted, too big, a bomb, a timeout
        │   └── FetchRefused   a URL points somewhere the server must not fetch from
        └── KnowledgeUnavailable  transient: the vector store, object store or a fetch failed

Each :class:`LLMError` carries ``outcome`` (the label of
``llm_requests_total``) and ``description`` (what the learner is told), so no
caller tells them apart by name. Protocol errors (bad frames) live in
:mod:`realtime.protocol`, which does no I/O.
"""

from __future__ import annotations


class LiveTutorError(Exception):
    """Root of every error the server raises on purpose."""


class BusUnavailable(LiveTutorError):
    """The shared backplane (Redis) cannot be reached; live fan-out is degraded."""


class SharedUnavailable(LiveTutorError):
    """The cache's shared tier (Redis) cannot be reached."""


class AuthError(LiveTutorError):
    """A token is missing, expired, forged, or does not grant what was asked."""


class StoreError(LiveTutorError):
    """The database failed or refused an operation."""


class SessionForbidden(StoreError):
    """The session exists and belongs to another user."""


class SessionCourseMismatch(StoreError):
    """The session exists and belongs to another course."""


class LLMError(LiveTutorError):
    """The language model did not produce an answer."""

    outcome = "error"
    description = "the language model is unavailable"


class LLMUnavailable(LLMError):
    """The endpoint could not be reached, dropped the stream, or answered 429/5xx."""


class LLMTimeout(LLMUnavailable):
    """No first token within the first-token timeout, or a stall between tokens."""

    outcome = "timeout"
    description = "the language model stopped responding"


class CircuitOpen(LLMUnavailable):
    """The circuit breaker is open: failing fast without calling the endpoint."""

    outcome = "circuit_open"
    description = "the language model is failing; try again shortly"


class LLMRejected(LLMError):
    """The endpoint refused the request itself (HTTP 4xx other than 429)."""

    outcome = "rejected"
    description = "the language model refused the request"


class KnowledgeError(LiveTutorError):
    """A course document could not be stored, fetched or indexed."""


class DocumentRejected(KnowledgeError):
    """A permanent failure: retrying cannot help. ``reason`` is shown to the instructor."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchRefused(DocumentRejected):
    """The URL resolves to an address the server must not reach (SSRF rules)."""


class KnowledgeUnavailable(KnowledgeError):
    """A transient failure (vector store, object store, network): worth retrying."""
