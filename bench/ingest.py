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
import sys
import tempfile
import time
from pathlib import Path

from bench._common import REPO_ROOT, fmt, machine, table
from core.settings import Settings
from devtools.cluster import RedisNode
from devtools.local import ChromaServer, WorkerProcess
from knowledge.ingest import Ingest
from tasks.app import create_celery

TEXTBOOK = REPO_ROOT.parent / "shared" / "corpus" / "introduction-philosophy-2e.pdf"
BIN = Path(sys.executable).parent
SETUPS = {
    "hashing": {"LIVETUTOR_EMBEDDER": "hashing", "LIVETUTOR_HYBRID": "false"},
    "minilm": {"LIVETUTOR_EMBEDDER": "minilm", "LIVETUTOR_HYBRID": "false"},
    "minilm+hybrid": {"LIVETUTOR_EMBEDDER": "minilm", "LIVETUTOR_HYBRID": "true"},
}


def run_one(name: str, env: dict[str, str], data: bytes) -> tuple[float, int, int]:
    settings = Settings.from_env(env)
    worker = WorkerProcess(env, Path(env["LIVETUTOR_DATA_DIR"]).parent / f"worker-{name}.log")
    worker.start()
    try:
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
        worker.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default=",".join(SETUPS))
    args = parser.parse_args()
    print(machine())
    data = TEXTBOOK.read_bytes()
    root = Path(tempfile.mkdtemp(prefix="livetutor-ingest-"))
    redis = RedisNode(base_dir=root)
    await redis.start()
    chroma = ChromaServer(root / "chroma", root / "chroma.log")
    chroma_url = chroma.start()
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
        chroma.stop()
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
