"""Throwaway PostgreSQL databases on the local test server.

:func:`temporary_database` creates a uniquely named database, yields its DSN
and drops it afterwards. The server must be running: a test that needs it
fails with instructions rather than skipping, so a missing server is never
mistaken for a passing suite.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
ADMIN_DSN = f"postgresql://{USER}@{HOST}:{PORT}/postgres"
CONNECT_TIMEOUT_S = 5.0

START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def dsn(database: str) -> str:
    """The DSN of ``database`` on the test server."""
    return f"postgresql://{USER}@{HOST}:{PORT}/{database}"


@asynccontextmanager
async def temporary_database() -> AsyncIterator[str]:
    """Create an empty database, yield its DSN, then drop it with any connections left."""
    name = f"livetutor_test_{uuid.uuid4().hex[:16]}"
    admin = await _connect_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield dsn(name)
    finally:
        admin = await _connect_admin()
        try:
            # FORCE: a test that failed half-way may still hold connections.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _connect_admin() -> Any:
    try:
        return await asyncpg.connect(ADMIN_DSN, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {ADMIN_DSN} ({exc!r}). Start it with:\n"
            f"    {START_HINT}\n"
            f"then check it with: pg_isready -h {HOST}",
            pytrace=False,
        )
