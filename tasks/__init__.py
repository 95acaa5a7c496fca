"""Background jobs on Celery: PDF prefetch and indexing, session cleanup.

- :mod:`tasks.app`: the Celery app, configured from the same settings as the server
  (broker and results on Redis, through Sentinel when configured);
- :mod:`tasks.jobs`: the tasks, thin wrappers around :mod:`knowledge.ingest` and
  :mod:`tasks.cleanup`;
- :mod:`tasks.policy`: the retry and dead-letter rules both runners follow
  (backoff with full jitter, the dead-letter reasons);
- :mod:`tasks.runners`: where a pod's document jobs run, chosen by ``LIVETUTOR_JOBS``:
  in its own threads (the embedded default) or sent to the Celery workers;
- :mod:`tasks.metrics`: the worker's Prometheus metrics, on its own port;
- :mod:`tasks.progress`: ``document.progress`` frames published to the backplane.

The embedded server runs the same job bodies in process (:mod:`tasks.runners`).
"""
