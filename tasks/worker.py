"""``livetutor worker`` and ``livetutor beat``: Celery processes with LiveTutor's settings.

The worker runs tasks in threads of one process (PDF parsing runs in its own
child process with limits, embedding and chromadb release the GIL), so its one
metrics registry sees every task; it serves them on
``LIVETUTOR_WORKER_METRICS_PORT`` (0 picks a free port; the address is printed).
"""

from __future__ import annotations

import socket
import sys

from prometheus_client import start_http_server

from core.settings import Settings
from tasks.app import QUEUE, create_celery
from tasks.jobs import ingest, stop_jobs
from tasks.metrics import WorkerMetrics, set_current_metrics


def run_worker(
    settings: Settings, *, concurrency: int | None = None, loglevel: str = "info"
) -> int:
    """Run a Celery worker until it is stopped."""
    app = create_celery(settings)
    app.set_default()
    app.set_current()
    metrics = WorkerMetrics()
    set_current_metrics(metrics)

    def dead_letters() -> int:
        return ingest().kb.dead_letter_count()

    def queue_length() -> int:
        with app.connection_for_read() as conn:
            return int(conn.default_channel.client.llen(QUEUE))

    metrics.watch(dead_letters, queue_length)

    from celery.signals import worker_shutting_down

    @worker_shutting_down.connect  # type: ignore[untyped-decorator]
    def _stopping(**_: object) -> None:
        stop_jobs()

    server, _ = start_http_server(
        settings.knowledge.worker_metrics_port, addr=settings.host, registry=metrics.registry
    )
    port = server.server_address[1]
    print(f"LiveTutor worker metrics on http://{settings.host}:{port}/metrics", flush=True)
    argv = [
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency or settings.knowledge.worker_concurrency),
        "--loglevel",
        loglevel.upper(),
        "--queues",
        QUEUE,
        "--hostname",
        f"livetutor@{socket.gethostname()}",
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)
    return 0


def run_beat(settings: Settings, *, loglevel: str = "info") -> int:
    """Run Celery beat (one per deployment) with its schedule file in the data dir."""
    app = create_celery(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    schedule = settings.data_dir / "celerybeat-schedule"
    app.start(["beat", "--loglevel", loglevel.upper(), "--schedule", str(schedule)])
    return 0


if __name__ == "__main__":
    sys.exit(run_worker(Settings.from_env()))
