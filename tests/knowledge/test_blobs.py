"""File stores: the data directory and S3 (moto's server as a real endpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from core.errors import KnowledgeUnavailable
from core.settings import Settings
from knowledge.blobs import FileBlobs, PostgresBlobs, S3Blobs, create_blobs


@pytest.fixture
def s3_settings(tmp_path: Path) -> Iterator[Settings]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = Settings.from_env(
        {
            "S3_ENDPOINT_URL": f"http://{host}:{port}",
            "LIVETUTOR_S3_BUCKET": "docs",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
        },
        data_dir=tmp_path,
    )
    boto3.client(
        "s3",
        endpoint_url=settings.knowledge.s3_endpoint_url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
    ).create_bucket(Bucket="docs")
    try:
        yield settings
    finally:
        server.stop()


def test_s3_put_get_delete(s3_settings: Settings) -> None:
    """Bytes round-trip through the bucket; a deleted key is unavailable."""
    blobs = create_blobs(s3_settings)
    assert isinstance(blobs, S3Blobs)
    blobs.put("course/doc.pdf", b"%PDF-1.4 data")
    assert blobs.get("course/doc.pdf") == b"%PDF-1.4 data"
    blobs.delete("course/doc.pdf")
    with pytest.raises(KnowledgeUnavailable):
        blobs.get("course/doc.pdf")


def test_files_in_the_data_dir(tmp_path: Path) -> None:
    """Without a bucket, files live under the data directory; keys cannot escape it."""
    blobs = create_blobs(Settings.from_env({}, data_dir=tmp_path))
    assert isinstance(blobs, FileBlobs)
    blobs.put("c/d.pdf", b"x")
    assert (tmp_path / "documents" / "c" / "d.pdf").read_bytes() == b"x"
    with pytest.raises(ValueError):
        blobs.put("../escape.pdf", b"x")
    blobs.delete("c/d.pdf")
    with pytest.raises(KnowledgeUnavailable):
        blobs.get("c/d.pdf")


@pytest.mark.postgres
async def test_postgres_files_up_to_the_cap(tmp_path: Path) -> None:
    """Without a bucket, a Postgres store keeps files in a table; larger ones are refused."""
    import asyncio

    from core.errors import DocumentRejected
    from tests.support.postgres import temporary_database

    async with temporary_database() as url:
        settings = Settings.from_env(
            {"DATABASE_URL": url, "LIVETUTOR_DB_FILE_MAX_BYTES": "100"}, data_dir=tmp_path
        )
        blobs = create_blobs(settings)
        assert isinstance(blobs, PostgresBlobs)
        await asyncio.to_thread(blobs.put, "c/d.pdf", b"%PDF-1.4 small")
        await asyncio.to_thread(blobs.put, "c/d.pdf", b"%PDF-1.4 replaced")
        assert await asyncio.to_thread(blobs.get, "c/d.pdf") == b"%PDF-1.4 replaced"
        with pytest.raises(DocumentRejected, match="need an object store"):
            await asyncio.to_thread(blobs.put, "c/big.pdf", b"x" * 101)
        await asyncio.to_thread(blobs.delete, "c/d.pdf")
        with pytest.raises(KnowledgeUnavailable):
            await asyncio.to_thread(blobs.get, "c/d.pdf")
        assert not (tmp_path / "documents").exists()
