"""Development tooling, outside the runtime layers: local clusters and process helpers.

- :mod:`devtools.cluster`: ``livetutor dev-cluster``: Redis, a replica, Sentinels and
  several pods as local processes on free ports;
- :mod:`devtools.local`: a chromadb server and a Celery worker as local processes.

Used by the CLI, the tests and the benchmarks; no runtime package imports it.
"""
