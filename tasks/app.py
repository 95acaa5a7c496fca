"""The Celery app, configured from :class:`~core.settings.Settings`.

Broker and result backend are the Redis the pods use: ``REDIS_URL``, or the
Sentinels (``sentinel://h1:26379/0;sentinel://h2:26379/0`` with ``master_name``
in both transport options). Tasks are JSON only, acknowledged late and
rejected back to the queue when their worker dies, one prefetched at a time.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from celery import Celery

from core.settings import Settings, SettingsError, parse_sentinels

QUEUE = "livetutor"
TASK_PREFIX = "livetutor."


def broker(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The broker URL and transport options for the configured Redis."""
    r = settings.redis
    options: dict[str, Any] = {
        "visibility_timeout": settings.knowledge.task_visibility_timeout_s,
        "socket_connect_timeout": r.connect_timeout_s,
        "socket_timeout": max(r.socket_timeout_s, 5.0),
    }
    if r.sentinels:
        auth = f":{quote(r.password, safe='')}@" if r.password else ""
        url = ";".join(f"sentinel://{auth}{h}:{p}/0" for h, p in parse_sentinels(r.sentinels))
        options["master_name"] = r.master_name
        if r.sentinel_password:
            options["sentinel_kwargs"] = {"password": r.sentinel_password}
        return url, options
    if r.url:
        return r.url, options
    raise SettingsError("Celery needs REDIS_URL or REDIS_SENTINELS for its broker")


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` (the worker, beat and pods each make one)."""
    url, options = broker(settings)
    app = Celery("livetutor", broker=url, backend=url, include=["tasks.jobs"])
    k = settings.knowledge
    app.conf.update(
        broker_transport_options=options,
        result_backend_transport_options=dict(options),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=86_400,
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_time_limit=k.extract_timeout_s + k.fetch_timeout_s + 3_600,
        task_soft_time_limit=k.extract_timeout_s + k.fetch_timeout_s + 3_000,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "cleanup-sessions": {
                "task": f"{TASK_PREFIX}cleanup_sessions",
                "schedule": k.cleanup_interval_s,
            },
            "regenerate-cache": {
                "task": f"{TASK_PREFIX}regenerate_cache",
                "schedule": settings.cache.warm_interval_s,
            },
        },
        timezone="UTC",
    )
    app.conf.livetutor_settings = settings
    return app
