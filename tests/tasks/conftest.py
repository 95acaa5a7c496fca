"""A real stack for the worker tests: Redis, a chromadb server, S3 (moto), Celery workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from devtools.cluster import RedisNode
from devtools.local import ChromaServer, WorkerProcess

BUCKET = "livetutor-test"
BIN = Path(sys.executable).parent


@pytest.fixture
def chroma_url(tmp_path: Path) -> Iterator[str]:
    """A chromadb server process on a free port."""
    server = ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def s3_url() -> Iterator[str]:
    """moto's S3 as a real HTTP endpoint, with the test bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


@dataclass
class Stack:
    """Environment shared by the server under test, the workers and the CLI."""

    env: dict[str, str]
    root: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def settings_env(self) -> dict[str, str]:
        return dict(self.env)

    def start_worker(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start ``livetutor worker``; returns it and its metrics port."""
        worker = WorkerProcess(self.env, self.root / f"worker-{len(self.workers)}.log")
        port = worker.start()
        assert worker.proc is not None
        self.workers.append(worker.proc)
        return worker.proc, port

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "livetutor"), *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
async def stack(
    redis_node: RedisNode, chroma_url: str, s3_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    from tests.conftest import SECRET

    env = {
        "REDIS_URL": redis_node.url,
        "CHROMA_URL": chroma_url,
        "S3_ENDPOINT_URL": s3_url,
        "LIVETUTOR_S3_BUCKET": BUCKET,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LIVETUTOR_EMBEDDER": "hashing",
        "LIVETUTOR_JOBS": "celery",
        "LIVETUTOR_WORKER_METRICS_PORT": "0",
        "LIVETUTOR_TASK_VISIBILITY_TIMEOUT_S": "3",
        "LIVETUTOR_TASK_BACKOFF_S": "0.1",
        "LIVETUTOR_EMBED_BATCH": "8",
        "LIVETUTOR_FETCH_ALLOWLIST": "localhost",
        "LIVETUTOR_DATA_DIR": str(tmp_path / "worker-data"),
        "LIVETUTOR_JWT_SECRET": SECRET,
        "LIVETUTOR_LOG_JSON": "false",
    }
    stack = Stack(env, tmp_path)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)
