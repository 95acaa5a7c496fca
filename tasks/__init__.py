"""Background jobs on Celery: PDF prefetch and indexing, session cleanup.

- :mod:`tasks.app`: the Celery app, configured from the same settings as the server
  (broker and results on Redis, through Sentinel when configured);
- :mod:`tasks.jobs`: the tasks, thin wrappers around :mod:`knowledge.ingest` and
  :mod:`tasks.cleanup` with the retry and dead-letter rules;
- :mod:`tasks.metrics`: the worker's Prometheus metrics, on its own port;
- :mod:`tasks.progress`: ``document.progress`` frames published to the backplane.

The embedded server runs the same job bodies in-process (:mod:`server.courses`).
"""
