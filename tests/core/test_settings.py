"""Settings parsed from the environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.errors import LiveTutorError
from core.settings import Settings, SettingsError, env_names

# Every field of Settings that is a group of its own, found from the type, not from a list.
GROUPS = tuple(
    n for n in Settings.__struct_fields__ if isinstance(getattr(Settings(), n), msgspec.Struct)
)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def field(settings: Settings, dotted: str) -> Any:
    """The value of a dotted field name such as ``ws.max_frame_bytes``."""
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def leaf_fields() -> set[str]:
    """Every dotted settings field that is not a group."""
    names = {n for n in Settings.__struct_fields__ if n not in GROUPS}
    for group in GROUPS:
        struct = type(getattr(Settings(), group))
        names |= {f"{group}.{n}" for n in struct.__struct_fields__}
    return names


def sample(dotted: str, default: Any) -> tuple[str, Any]:
    """A valid non-default value for a field: its text in the environment and its parsed value."""
    if dotted == "llm.provider":
        return "openai", "openai"
    if dotted == "auth.dev_signin":
        return "off", "off"
    if dotted == "knowledge.embedder":
        return "hashing", "hashing"
    if dotted == "knowledge.jobs":
        return "celery", "celery"
    if isinstance(default, bool):
        return ("false", False) if default else ("true", True)
    if isinstance(default, int):
        return str(default + 7), default + 7
    if isinstance(default, float):
        return str(default + 1.5), default + 1.5
    if isinstance(default, Path):
        return "/srv/livetutor-data", Path("/srv/livetutor-data")
    if dotted == "redis.sentinels":
        return "10.0.0.1:26379", ("10.0.0.1:26379",)
    if isinstance(default, tuple):
        return "https://a.example", ("https://a.example",)
    assert isinstance(default, str), dotted
    return f"value-of-{dotted}", f"value-of-{dotted}"


def test_defaults() -> None:
    """An empty environment gives the documented defaults."""
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.data_dir == Path("data")
    assert s.log_json is True
    assert s.redis.url == ""
    assert s.redis.enabled is False
    assert s.ws.max_frame_bytes == 65_536
    assert s.ws.allowed_origins == ()
    assert s.auth.jwt_issuer == "livetutor"
    assert s.store.database_url == ""
    assert s.llm.provider == "auto"
    assert s.llm.model == "gpt-4o-mini"
    assert s.llm_provider == "offline"


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, from_env reads the process environment."""
    monkeypatch.setenv("LIVETUTOR_PORT", "8123")
    assert Settings.from_env().port == 8123


def test_each_field_has_its_own_variable() -> None:
    """env_names() maps one distinct variable to every settings field."""
    names = env_names()
    assert sorted(names.values()) == sorted(leaf_fields())


@pytest.mark.parametrize("name", sorted(env_names()))
def test_every_variable_is_parsed(name: str) -> None:
    """Each variable in env_names(), given as text, sets its field to the parsed value."""
    dotted = env_names()[name]
    raw, expected = sample(dotted, field(Settings(), dotted))
    settings = Settings.from_env({name: raw})
    assert field(settings, dotted) == expected


@pytest.mark.parametrize(
    ("name", "dotted"),
    [
        ("REDIS_URL", "redis.url"),
        ("REDIS_MASTER_NAME", "redis.master_name"),
        ("REDIS_PASSWORD", "redis.password"),
        ("DATABASE_URL", "store.database_url"),
        ("READ_DATABASE_URL", "store.read_database_url"),
        ("OPENAI_BASE_URL", "llm.base_url"),
        ("OPENAI_API_KEY", "llm.api_key"),
        ("LLM_MODEL", "llm.model"),
    ],
)
def test_standard_names(name: str, dotted: str) -> None:
    """The standard variables keep their usual names, without the LIVETUTOR_ prefix."""
    assert env_names()[name] == dotted
    settings = Settings.from_env({name: "standard-value"})
    assert field(settings, dotted) == "standard-value"


def test_allowed_origins_is_a_comma_list() -> None:
    """Origins are split on commas, trimmed, and empty parts dropped."""
    env = {"LIVETUTOR_ALLOWED_ORIGINS": " https://a.example, ,https://b.example ,"}
    settings = Settings.from_env(env)
    assert settings.ws.allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("false", False), ("0", False), ("true", True), ("1", True)],
)
def test_log_json_bool_parsing(raw: str, expected: bool) -> None:
    """LIVETUTOR_LOG_JSON reads true/false and 1/0."""
    assert Settings.from_env({"LIVETUTOR_LOG_JSON": raw}).log_json is expected


def test_invalid_bool_is_settings_error() -> None:
    """A bool variable holding something else is refused."""
    with pytest.raises(SettingsError):
        Settings.from_env({"LIVETUTOR_LOG_JSON": "maybe"})


@pytest.mark.parametrize(
    ("name", "raw", "path"),
    [
        ("LIVETUTOR_MAX_FRAME_BYTES", "lots", "ws.max_frame_bytes"),
        ("LIVETUTOR_PORT", "80.5", "port"),
        ("LIVETUTOR_LLM_TEMPERATURE", "warm", "llm.temperature"),
    ],
)
def test_invalid_number_is_settings_error(name: str, raw: str, path: str) -> None:
    """A number variable that does not parse raises SettingsError naming the field."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: raw})
    # The message names the field path (``$.ws.max_frame_bytes``), not the variable.
    assert path in str(info.value)


def test_invalid_provider_is_settings_error() -> None:
    """An unknown LIVETUTOR_LLM_PROVIDER is refused."""
    with pytest.raises(SettingsError):
        Settings.from_env({"LIVETUTOR_LLM_PROVIDER": "magic"})


def test_settings_error_is_in_the_tree() -> None:
    """SettingsError is a LiveTutorError and a ValueError."""
    assert issubclass(SettingsError, LiveTutorError)
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("LIVETUTOR_MAX_FRAME_BYTES", "1023"),
        ("LIVETUTOR_OUTBOUND_QUEUE_FRAMES", "0"),
        ("LIVETUTOR_FLUSH_TOKENS", "0"),
        ("LIVETUTOR_FLUSH_MS", "-1"),
        ("LIVETUTOR_FLUSH_MAX_MS", "10"),
        ("LIVETUTOR_FLUSH_MAX_TOKENS", "7"),
        ("LIVETUTOR_LLM_BREAKER_FAILURES", "0"),
        ("LIVETUTOR_LLM_CONNECT_RETRIES", "-1"),
        ("LIVETUTOR_LLM_TOKEN_TIMEOUT_S", "-1"),
        ("LIVETUTOR_LLM_CONNECT_TIMEOUT_S", "0"),
        ("LIVETUTOR_IDLE_TIMEOUT_S", "-5"),
        ("LIVETUTOR_QUERY_TIMEOUT_S", "0"),
        ("LIVETUTOR_METRICS_PORT", "70000"),
        ("LIVETUTOR_METRICS_PORT", "8000"),
        ("LIVETUTOR_WORKERS", "0"),
    ],
)
def test_validation_errors_name_the_variable(name: str, raw: str) -> None:
    """Values out of range raise SettingsError naming the variable."""
    with pytest.raises(SettingsError, match=re.escape(name)):
        Settings.from_env({name: raw})


def test_smallest_frame_limit_is_accepted() -> None:
    """max_frame_bytes of exactly 1024 is allowed."""
    settings = Settings.from_env({"LIVETUTOR_MAX_FRAME_BYTES": "1024"})
    assert settings.ws.max_frame_bytes == 1024


def test_flush_limits_may_equal_the_idle_ones() -> None:
    """Widest flush limits equal to the idle ones (no widening under lag) are accepted."""
    env = {
        "LIVETUTOR_FLUSH_MS": "40",
        "LIVETUTOR_FLUSH_MAX_MS": "40",
        "LIVETUTOR_FLUSH_TOKENS": "16",
        "LIVETUTOR_FLUSH_MAX_TOKENS": "16",
    }
    tutor = Settings.from_env(env).tutor
    assert (tutor.flush_ms, tutor.flush_max_ms) == (40, 40)
    assert (tutor.flush_tokens, tutor.flush_max_tokens) == (16, 16)


@pytest.mark.parametrize(
    ("env", "provider"),
    [
        ({}, "offline"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, "openai"),
        ({"OPENAI_API_KEY": "sk-test"}, "openai"),
        ({"OPENAI_API_KEY": "sk-test", "LIVETUTOR_LLM_PROVIDER": "offline"}, "offline"),
        ({"LIVETUTOR_LLM_PROVIDER": "openai"}, "openai"),
    ],
    ids=["nothing", "base-url", "api-key", "explicit-offline", "explicit-openai"],
)
def test_llm_provider(env: dict[str, str], provider: str) -> None:
    """auto picks openai when a base URL or key is set, else offline; explicit wins."""
    assert Settings.from_env(env).llm_provider == provider


def test_top_level_override_wins_over_env() -> None:
    """A keyword override replaces the environment's value."""
    settings = Settings.from_env({"LIVETUTOR_PORT": "9000"}, port=9100)
    assert settings.port == 9100


def test_group_override_wins_over_env_and_keeps_the_rest() -> None:
    """A group override replaces its fields and keeps the group's other variables."""
    env = {"LIVETUTOR_MAX_FRAME_BYTES": "2048", "LIVETUTOR_ASK_BURST": "9"}
    settings = Settings.from_env(env, ws={"max_frame_bytes": 4096})
    assert settings.ws.max_frame_bytes == 4096
    assert settings.ws.ask_burst == 9


def test_override_is_validated() -> None:
    """Overrides go through the same validation as the environment."""
    with pytest.raises(SettingsError):
        Settings.from_env({}, ws={"max_frame_bytes": 10})


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after parsing."""
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_every_variable_is_documented() -> None:
    """docs/configuration.md mentions every variable in env_names()."""
    assert DOCS.is_file(), f"{DOCS} is missing"
    text = DOCS.read_text(encoding="utf-8")
    missing = [name for name in sorted(env_names()) if name not in text]
    assert missing == []


def test_malformed_sentinels_are_a_settings_error() -> None:
    """REDIS_SENTINELS entries must be host:port; the error names the variable."""
    with pytest.raises(SettingsError, match="REDIS_SENTINELS"):
        Settings.from_env({"REDIS_SENTINELS": "10.0.0.1:26379,oops"})
