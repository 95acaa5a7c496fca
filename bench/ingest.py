"""Ingestion throughput: the textbook, end to end through a Celery worker, per embedder.

Starts a Redis, a chromadb server and, for each embedder, one ``livetutor worker``
(concurrency 1); registers the textbook as an upload, sends ``index_document``
through the broker, and polls the registry until the document is ``ready``.
The time runs from sending the task to ``ready``: broker, text extraction (child
process), chunking, embedding and writes to chromadb.

    python -m bench.ingest [--embedders hashing,minilm,minilm+hybrid]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._common import REPO_ROOT, fmt, machine, table
from knowledge.ingest import Ingest
from realtime.cluster import RedisNode, free_port
from server.settings import Settings
from tasks.app import create_celery

TEXTBOOK = REPO_ROOT.parent / "shared" / "corpus" / "introduction-philosophy-2e.pdf"
BIN = Path(sys.executable).parent
SETUPS = {
    "hashing": {"LIVETUTOR_EMBEDDER": "hashing", "LIVETUTOR_HYBRID": "false"},
    "minilm": {"LIVETUTOR_EMBEDDER": "minilm", "LIVETUTOR_HYBRID": "false"},
    "minilm+hybrid": {"LIVETUTOR_EMBEDDER": "minilm", "LIVETUTOR_HYBRID": "true"},
}


def start_chroma(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "chroma"), "run", "--path", str(root / "chroma"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("chroma server did not start")


def run_one(name: str, env: dict[str, str], data: bytes) -> tuple[float, int, int]:
    settings = Settings.from_env(env)
    worker = subprocess.Popen(
        [str(BIN / "livetutor"), "worker", "--concurrency", "1"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert worker.stdout is not None
        worker.stdout.readline()  # the metrics line: the worker is up
        ingest = Ingest.create(settings)
        record, _ = ingest.add_upload(f"bench-{name}", "textbook.pdf", data, user="bench")
        celery = create_celery(settings)
        started = time.monotonic()
        celery.send_task("livetutor.index_document", args=[record.id])
        while True:
            current = ingest.kb.get_document(record.id)
            assert current is not None
            if current.status in ("ready", "failed"):
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        if current.status != "ready":
            raise RuntimeError(f"{name}: {current.reason}")
        return elapsed, current.pages, current.chunks
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default=",".join(SETUPS))
    args = parser.parse_args()
    print(machine())
    data = TEXTBOOK.read_bytes()
    root = Path(tempfile.mkdtemp(prefix="livetutor-ingest-"))
    redis = RedisNode(base_dir=root)
    await redis.start()
    chroma, chroma_url = start_chroma(root)
    rows = []
    try:
        for name in args.embedders.split(","):
            env = {
                "REDIS_URL": redis.url,
                "CHROMA_URL": chroma_url,
                "LIVETUTOR_DATA_DIR": str(root / "data"),
                "LIVETUTOR_WORKER_METRICS_PORT": "0",
                "LIVETUTOR_LOG_LEVEL": "warning",
                **SETUPS[name],
            }
            elapsed, pages, chunks = await asyncio.to_thread(run_one, name, env, data)
            rows.append(
                [
                    name,
                    fmt(pages),
                    fmt(chunks),
                    fmt(elapsed, 1),
                    fmt(pages / elapsed, 1),
                    fmt(chunks / elapsed, 1),
                ]
            )
            print(f"{name}: {elapsed:.1f} s", flush=True)
    finally:
        chroma.terminate()
        chroma.wait(timeout=10)
        await redis.stop()
    print(
        table(
            ["embedder", "pages", "chunks", "seconds", "pages/s", "chunks/s"],
            rows,
            title="textbook through one worker (concurrency 1), task sent to ready",
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
