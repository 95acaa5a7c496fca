"""Users' sessions and messages, course problems and policies: one interface, two databases.

- :mod:`store.store`: the :class:`~store.store.Store` interface and its records;
- :mod:`store.sqlite`: the embedded default, a file in the data directory;
- :mod:`store.postgres`: production, on asyncpg;
- :mod:`store.migrations`: the SQL migrations of both, applied at start.

:mod:`server.backends` picks one from ``DATABASE_URL``.
"""
