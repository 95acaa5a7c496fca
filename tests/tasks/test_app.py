"""The Celery app's configuration from settings."""

from __future__ import annotations

import pytest

from core.settings import Settings, SettingsError
from tasks.app import broker, create_celery


def test_sentinel_broker_names_the_master_and_database_on_every_entry() -> None:
    """Sentinel URLs carry /0 on each entry and master_name in both transport options."""
    settings = Settings.from_env(
        {
            "REDIS_SENTINELS": "s1:26379,s2:26380",
            "REDIS_MASTER_NAME": "lt-master",
            "REDIS_PASSWORD": "p@ss",
            "REDIS_SENTINEL_PASSWORD": "sp",
        }
    )
    url, options = broker(settings)
    assert url == "sentinel://:p%40ss@s1:26379/0;sentinel://:p%40ss@s2:26380/0"
    assert options["master_name"] == "lt-master"
    assert options["sentinel_kwargs"] == {"password": "sp"}
    app = create_celery(settings)
    assert app.conf.broker_transport_options["master_name"] == "lt-master"
    assert app.conf.result_backend_transport_options["master_name"] == "lt-master"


def test_reliability_options() -> None:
    """Late acks, requeue on worker loss, one prefetched task, JSON only."""
    app = create_celery(Settings.from_env({"REDIS_URL": "redis://r:6379/0"}))
    conf = app.conf
    assert conf.broker_url == "redis://r:6379/0"
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost) == (True, True)
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert "cleanup-sessions" in conf.beat_schedule


def test_no_redis_no_celery() -> None:
    """Without Redis there is no broker: a clear error."""
    with pytest.raises(SettingsError, match="REDIS_URL or REDIS_SENTINELS"):
        broker(Settings.from_env({}))
