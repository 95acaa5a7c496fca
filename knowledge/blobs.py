"""Where uploaded PDFs live until (and after) they are indexed.

:class:`S3Blobs` in production, so a worker on any host can read what any pod
received; :class:`PostgresBlobs` when there is no bucket but the store is
Postgres (files up to ``LIVETUTOR_DB_FILE_MAX_BYTES``); :class:`FileBlobs` in
the data directory for the embedded default (one process, no other host to
reach). :func:`create_blobs` chooses.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Protocol

from core.errors import DocumentRejected, KnowledgeUnavailable
from core.settings import Settings


class BlobStore(Protocol):
    """Bytes by key."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing any)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`KnowledgeUnavailable` if missing or unreachable."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...


class FileBlobs:
    """Files under ``<data dir>/documents``."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        if ".." in key or key.startswith("/"):
            raise ValueError(f"bad blob key {key!r}")
        return self._root / key

    def put(self, key: str, data: bytes) -> None:
        """Write atomically (temporary file, then rename)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        staged.write_bytes(data)
        os.replace(staged, path)

    def get(self, key: str) -> bytes:
        """Read the file."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KnowledgeUnavailable(f"stored file {key} is missing") from None

    def delete(self, key: str) -> None:
        """Remove the file."""
        self._path(key).unlink(missing_ok=True)


class S3Blobs:
    """An S3-compatible bucket (AWS, MinIO, Ceph, …)."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        k = settings.knowledge
        self._bucket = k.s3_bucket
        self._s3: Any = boto3.client(
            "s3",
            endpoint_url=k.s3_endpoint_url or None,
            aws_access_key_id=k.aws_access_key_id or None,
            aws_secret_access_key=k.aws_secret_access_key or None,
            region_name=k.aws_default_region or None,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def put(self, key: str, data: bytes) -> None:
        """Upload the object."""
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=key, Body=data, ContentType="application/pdf"
            )
        except Exception as exc:
            raise KnowledgeUnavailable(f"object store put failed: {type(exc).__name__}") from exc

    def get(self, key: str) -> bytes:
        """Download the object."""
        try:
            body: bytes = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise KnowledgeUnavailable(f"object store get failed: {type(exc).__name__}") from exc
        return body

    def delete(self, key: str) -> None:
        """Delete the object (absent is fine)."""
        try:
            self._s3.delete_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            raise KnowledgeUnavailable(f"object store delete failed: {type(exc).__name__}") from exc


class PostgresBlobs:
    """Files as ``bytea`` rows in the Postgres store, for deployments without an object store.

    The table is created on first use (``CREATE TABLE IF NOT EXISTS``). Calls are
    blocking: they run in job threads, each on a short-lived connection.
    """

    _TABLE = "livetutor_document_files"

    def __init__(self, dsn: str, *, max_bytes: int, timeout_s: float) -> None:
        self._dsn = dsn
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._ready = False

    def _run(self, query: str, *args: Any) -> Any:
        import asyncio

        import asyncpg

        async def go() -> Any:
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout_s)
            try:
                if not self._ready:
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {self._TABLE} "
                        "(key text PRIMARY KEY, data bytea NOT NULL)"
                    )
                    self._ready = True
                return await conn.fetchval(query, *args, timeout=self._timeout_s)
            finally:
                await conn.close()

        try:
            return asyncio.run(go())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise KnowledgeUnavailable(f"database file store failed: {type(exc).__name__}") from exc

    def put(self, key: str, data: bytes) -> None:
        """Insert or replace the row; files over the cap need an object store."""
        if len(data) > self._max_bytes:
            raise DocumentRejected(
                f"files over {self._max_bytes} bytes need an object store (LIVETUTOR_S3_BUCKET)"
            )
        self._run(
            f"INSERT INTO {self._TABLE} (key, data) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data",
            key,
            data,
        )

    def get(self, key: str) -> bytes:
        """The row's bytes."""
        data = self._run(f"SELECT data FROM {self._TABLE} WHERE key = $1", key)
        if data is None:
            raise KnowledgeUnavailable(f"stored file {key} is missing")
        return bytes(data)

    def delete(self, key: str) -> None:
        """Delete the row if present."""
        self._run(f"DELETE FROM {self._TABLE} WHERE key = $1", key)


def create_blobs(settings: Settings) -> BlobStore:
    """S3 when a bucket is configured; else Postgres when it is the store; else the data dir."""
    if settings.knowledge.s3_bucket:
        return S3Blobs(settings)
    url = settings.store.database_url
    if url.startswith(("postgres://", "postgresql://")):
        return PostgresBlobs(
            url,
            max_bytes=settings.knowledge.db_file_max_bytes,
            timeout_s=settings.store.query_timeout_s,
        )
    return FileBlobs(settings.data_dir / "documents")
