"""The Redis keyspace: names pinned to what running deployments use, the envelope, one home."""

from __future__ import annotations

import ast
import inspect
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import keys

ROOT = Path(__file__).resolve().parents[2]

# The compatibility guard: pods of the old and the new release share one Redis
# during an upgrade, so these literal strings never change. The escaped names
# (ids holding ``:`` or ``%``, a cache namespace named ``lock``) changed once, on
# purpose, so that no two inputs share a name (docs/deployment.md, upgrade notes).
EXPECTED = [
    (keys.session_channel("s1"), "lt:s:s1"),
    (keys.session_channel(keys.user_channel("ann")), "lt:s:~u/ann"),
    (keys.pod_channel("pod-a"), "lt:pod:pod-a"),
    (keys.journal("st1"), "lt:j:st1"),
    (keys.stream_meta("st1"), "lt:m:st1"),
    (keys.lease("st1"), "lt:lease:st1"),
    (keys.RUNNING, "lt:running"),
    (keys.session_running("s1"), "lt:run:s1"),
    (keys.session_streams("s1"), "lt:sent:s1"),
    (keys.presence("s1"), "lt:p:s1"),
    (keys.user_channel("ann"), "~u/ann"),
    (keys.rate_limit("ann"), "lt:rl:ann"),
    (keys.user_connections("ann"), "lt:uc:ann"),
    (keys.cache_value("answers:1.0:a"), "lt:c:answers:1.0:a"),
    (keys.cache_lock("answers:1.0:a"), "lt:c:lock:answers:1.0:a"),
    (keys.cache_version("answers"), "lt:c:ver:answers"),
    (keys.CACHE_INVALIDATION, "lt:c:inval"),
    (keys.popular_counts("bio"), "lt:fq:bio"),
    (keys.popular_wordings("bio"), "lt:fq:text:bio"),
    (keys.popular_learners("bio"), "lt:fq:who:bio"),
    (keys.popular_removed("bio"), "lt:fq:removed:bio"),
    (keys.session_channel("s-0f3a.b_c~d"), "lt:s:s-0f3a.b_c~d"),
    (keys.session_channel("a:b"), "lt:s:a%3Ab"),
    (keys.rate_limit("oidc:ann@x.org"), "lt:rl:oidc%3Aann@x.org"),
    (keys.popular_counts("text:bio"), "lt:fq:text%3Abio"),
    (keys.popular_counts("100%"), "lt:fq:100%25"),
    (keys.cache_value("lock:1.0:a"), "lt:c:%6Cock:1.0:a"),
    (keys.cache_value("ver:1.0:a"), "lt:c:%76er:1.0:a"),
    (keys.PRESENCE_SCAN, "lt:p:*"),
    (keys.SESSION_RUNNING_SCAN, "lt:run:*"),
    (keys.JOURNAL_SCAN, "lt:j:*"),
    (keys.ENVELOPE_SEP, "\x1f"),
]

# A key literal: ``lt:`` not preceded by a word character (so ``default:`` is not one).
KEY_LITERAL = re.compile(r"(?<!\w)lt:")


@pytest.mark.parametrize(("built", "expected"), EXPECTED, ids=[e for _, e in EXPECTED])
def test_names_are_the_deployed_ones(built: str, expected: str) -> None:
    """Every key and channel is spelled exactly as released deployments spell it."""
    assert built == expected


def test_session_of_channel_inverts_session_channel() -> None:
    """A session channel gives back its session; any other channel gives None."""
    assert keys.session_of_channel(keys.session_channel("a:b")) == "a:b"
    assert keys.session_of_channel(keys.session_channel("~u/ann")) == "~u/ann"
    assert keys.session_of_channel(keys.pod_channel("pod-a")) is None
    assert keys.session_of_channel(keys.CACHE_INVALIDATION) is None


def test_stream_of_lease_inverts_lease() -> None:
    """A lease key gives back its stream id."""
    assert keys.stream_of_lease(keys.lease("st:1")) == "st:1"


def test_envelope_is_the_wire_format() -> None:
    """The envelope is origin, send time with six decimals and the text, split by 0x1f."""
    assert keys.encode_envelope("pod-a", 1712345678.5, '{"a":1}') == (
        'pod-a\x1f1712345678.500000\x1f{"a":1}'
    )


@pytest.mark.parametrize(
    "text",
    ['{"type":"delta","text":"hi"}', "", "a\x1fb", "\x1f\x1f", '{"text":"x\x1fy"}'],
)
def test_envelope_round_trips(text: str) -> None:
    """Decoding gives back origin, send time and the text, separators in the text included."""
    data = keys.encode_envelope("pod-a", 1712345678.123456, text)
    assert keys.decode_envelope(data) == ("pod-a", 1712345678.123456, text)


def test_envelope_from_older_writers_decodes() -> None:
    """A send time written with repr (as workers did) or missing still decodes."""
    assert keys.decode_envelope("worker-h\x1f1712345678.1234567\x1f{}") == (
        "worker-h",
        1712345678.1234567,
        "{}",
    )
    assert keys.decode_envelope("pod-a\x1f\x1f{}") == ("pod-a", None, "{}")
    assert keys.decode_envelope("pod-a\x1fnot-a-time\x1f{}") == ("pod-a", None, "{}")


def test_origin_with_separator_is_refused() -> None:
    """An origin holding the separator would shift every field: refused."""
    with pytest.raises(ValueError):
        keys.encode_envelope("pod\x1fa", 0.0, "{}")


# Functions of core.keys that are not a key or channel built from one id.
NOT_NAMES = {"user_channel", "session_of_channel", "stream_of_lease"}
NAMES: dict[str, Callable[[str], str]] = {
    name: fn
    for name, fn in vars(keys).items()
    if inspect.isfunction(fn)
    and fn.__module__ == keys.__name__
    and not name.startswith("_")
    and "envelope" not in name
    and name not in NOT_NAMES
}
CONSTANTS = {keys.RUNNING, keys.CACHE_INVALIDATION}
# Ids made of the pieces that make names meet: separators, escapes, other families' words.
PIECES = ["", ":", "%", "%3A", "%25", "3A", "text", "who", "removed", "lock", "ver", "inval"]
IDS = st.one_of(
    st.lists(st.sampled_from([*PIECES, "answers", "1.0", "a", "~u/", "s", "od", "ning"])).map(
        "".join
    ),
    st.text(),
)


def test_every_name_builder_is_checked() -> None:
    """The collision tests below see every key and channel builder, new ones included."""
    assert {"session_channel", "cache_value", "popular_counts", "popular_wordings"} <= set(NAMES)


@given(st.sampled_from(sorted(NAMES)), IDS, st.data())
def test_distinct_inputs_never_share_a_name(f: str, a: str, data: st.DataObject) -> None:
    """Two different (builder, id) pairs always give two different names."""
    name = NAMES[f](a)
    for g, build in NAMES.items():
        prefix = build("")
        rest = name[len(prefix) :] if name.startswith(prefix) else ""
        # The ids likeliest to rebuild f(a) with g: the rest of its name, as written or decoded.
        b = data.draw(st.one_of(st.sampled_from([rest, unquote(rest)]), IDS))
        if (g, b) != (f, a):
            assert build(b) != name, (f, a, g, b)


@given(st.sampled_from(sorted(NAMES)), IDS)
def test_no_id_gives_a_fixed_name(f: str, a: str) -> None:
    """No id makes a builder produce the running-streams set or the invalidation channel."""
    assert NAMES[f](a) not in CONSTANTS


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (keys.popular_counts("text:X"), keys.popular_wordings("X")),
        (keys.popular_counts("who:X"), keys.popular_learners("X")),
        (keys.cache_value("lock:answers:1.0:a"), keys.cache_lock("answers:1.0:a")),
        (keys.cache_value("ver:answers"), keys.cache_version("answers")),
        (keys.cache_value("inval"), keys.CACHE_INVALIDATION),
    ],
)
def test_the_reported_collisions_are_gone(one: str, other: str) -> None:
    """A course named text:X, or a cache namespace named lock or ver, has names of its own."""
    assert one != other


def runtime_modules() -> list[Path]:
    """Every module of the packages the import contract lists."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = config["tool"]["importlinter"]["root_packages"]
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def test_only_core_keys_spells_a_key() -> None:
    """No runtime module other than core/keys.py has an ``lt:`` string literal."""
    home = ROOT / "core" / "keys.py"
    modules = runtime_modules()
    assert home in modules
    offenders = []
    for path in modules:
        if path == home:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and KEY_LITERAL.search(node.value)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
