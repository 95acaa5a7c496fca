"""Which runner a pod's document jobs get."""

from __future__ import annotations

import pytest

from core.settings import Settings
from tasks.runners import jobs_kind


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({}, "inprocess"),
        ({"REDIS_URL": "redis://localhost:6379/0"}, "celery"),
        ({"REDIS_URL": "redis://localhost:6379/0", "LIVETUTOR_JOBS": "inprocess"}, "inprocess"),
        ({"LIVETUTOR_JOBS": "celery"}, "celery"),
    ],
)
def test_jobs_kind_resolves_auto_from_redis(env: dict[str, str], kind: str) -> None:
    """``auto`` is Celery when Redis is configured; an explicit choice is kept."""
    assert jobs_kind(Settings.from_env(env)) == kind
