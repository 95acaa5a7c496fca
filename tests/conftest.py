"""Shared fixtures: settings in a temporary data directory and a live server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from core.settings import GROUPS, Settings
from devtools.cluster import RedisNode
from tests.support.server import RunningServer, run_server

SECRET = "test-secret-" + "x" * 40


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test: temporary data dir, unpaced offline tutor, short timeouts."""

    def make(**overrides: Any) -> Settings:
        groups = set(GROUPS)
        base: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "pod_name": "test-pod",
            "drain_s": 2.0,
            "auth": {"jwt_secret": SECRET},
            "llm": {"offline_pace_ms": 0, "provider": "offline"},
            # Frames keep their idle limits, so how many deltas an answer has does not
            # depend on how loaded the machine is (the widening has unit tests of its own).
            "tutor": {"flush_max_ms": 15.0, "flush_max_tokens": 8},
        }
        for key, value in overrides.items():
            if key in groups:
                base[key] = {**base.get(key, {}), **value}
            else:
                base[key] = value
        return Settings.from_env({}, **base)

    return make


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    """A server on embedded defaults (SQLite, offline tutor, demo course)."""
    async with run_server(make_settings()) as running:
        yield running


@pytest.fixture
async def redis_node() -> AsyncIterator[RedisNode]:
    """A redis-server of the test's own on a free port, stopped afterwards."""
    node = RedisNode()
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
