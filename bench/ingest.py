"""Ingestion: the textbook indexed end to end, its time, and the memory of the process doing it.

Two paths, each per embedder setup:

- ``pod``: ``livetutor serve`` on embedded defaults (no Redis, no ``CHROMA_URL``); an
  instructor uploads the textbook over HTTP and the pod's in-process runner indexes it;
  the clock runs from the upload to ``GET /documents/{id}`` saying ``ready``;
- ``worker``: a Redis, a chromadb server and one ``livetutor worker`` (concurrency 1);
  the textbook is registered as an upload and ``index_document`` is sent through the
  broker; the clock runs from sending the task to the registry saying ``ready``.

Either way the time covers text extraction (child process), chunking, embedding and
the writes to chromadb. Memory is read from ``/proc/<pid>/status`` of the process that
indexes: ``VmRSS`` when it is idle before the document arrives, ``VmHWM`` (its peak
resident memory over its whole life) once the document is ready, and ``VmRSS`` again
a few seconds later (what it keeps).

``--baseline REV`` runs the same paths with the code of commit ``REV`` too (its packages
are unpacked from git into a temporary directory, and its processes start there with
``PYTHONPATH`` pointing at it), each baseline run right before the same run of this
tree, so before and after share the machine's load. ``--after REV`` measures commit
``REV`` the same way instead of the working tree (whatever else is being edited in it).

    python -m bench.ingest [--embedders hashing,minilm,minilm+hybrid] [--paths pod,worker]
                           [--baseline REV] [--after REV]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench._common import BASE_ENV, REPO_ROOT, _wait_listening, fmt, machine, table
from core.auth import TokenCodec
from core.logs import configure
from core.settings import Settings
from devtools.cluster import RedisNode
from devtools.local import ChromaServer
from knowledge.ingest import Ingest
from tasks.app import create_celery

TEXTBOOK = REPO_ROOT.parent / "shared" / "corpus" / "introduction-philosophy-2e.pdf"
BIN = Path(sys.executable).parent
SETUPS = {
    "hashing": {"LIVETUTOR_EMBEDDER": "hashing", "LIVETUTOR_HYBRID": "false"},
    "minilm": {"LIVETUTOR_EMBEDDER": "minilm", "LIVETUTOR_HYBRID": "false"},
    "minilm+hybrid": {"LIVETUTOR_EMBEDDER": "minilm", "LIVETUTOR_HYBRID": "true"},
}
# The packages a baseline needs (what pyproject.toml installs).
PACKAGES = (
    "core",
    "realtime",
    "cache",
    "knowledge",
    "store",
    "tutor",
    "tasks",
    "devtools",
    "server",
)
# Settings that would take a run off embedded defaults (the pod) or off this run's stack.
FOREIGN = ("REDIS_URL", "REDIS_SENTINELS", "CHROMA_URL", "DATABASE_URL", "LIVETUTOR_S3_BUCKET")
# Time for a job to hand its memory back after it has said "ready".
SETTLE_S = 3.0
POLL_S = 0.2
START_TIMEOUT_S = 120.0
INDEX_TIMEOUT_S = 3_600.0
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Code:
    """Which code the processes of a run execute: this tree, or a commit unpacked."""

    label: str
    root: Path

    def env(self) -> dict[str, str]:
        """Imports from ``root`` first (before the installed, editable tree)."""
        return {"PYTHONPATH": str(self.root)}


@dataclass(frozen=True, slots=True)
class Result:
    """One indexing run."""

    seconds: float
    pages: int
    chunks: int
    idle_mib: float
    peak_mib: float
    after_mib: float


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, in MiB, from ``/proc/<pid>/status``."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024 / MIB
    return fields["VmRSS"], fields["VmHWM"]


def unpack(rev: str, into: Path, role: str) -> Code:
    """The packages of commit ``rev``, from ``git archive``, under ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, *PACKAGES],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    short = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    return Code(f"{role} ({short})", into)


def child_env(code: Code, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    return {**env, **BASE_ENV, **code.env(), **extra}


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(read: Callable[[], tuple[str, int, int, str]], started: float) -> tuple[int, int]:
    """Poll ``read`` (status, pages, chunks, reason) until ready; (pages, chunks)."""
    while True:
        status, pages, chunks, reason = read()
        if status == "ready":
            return pages, chunks
        if status == "failed":
            raise RuntimeError(f"indexing failed: {reason}")
        if time.monotonic() - started > INDEX_TIMEOUT_S:
            raise TimeoutError(f"still {status} after {INDEX_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def run_pod(setup: Mapping[str, str], code: Code, data: bytes, root: Path) -> Result:
    """``livetutor serve`` on embedded defaults indexes an upload in its own process."""
    secret = secrets.token_urlsafe(48)
    env = child_env(
        code,
        {**setup, "LIVETUTOR_JWT_SECRET": secret, "LIVETUTOR_LLM_PROVIDER": "offline"},
    )
    root.mkdir(parents=True)
    argv = [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--metrics-port", "0"]
    with (root / "pod.log").open("wb") as log:
        proc = subprocess.Popen(
            [*argv, "--data-dir", str(root / "data")],
            cwd=code.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        host, port = _wait_listening(proc, START_TIMEOUT_S)
        token = TokenCodec(secret, "livetutor").issue("bench", role="instructor", courses=["bench"])
        headers = {"Authorization": f"Bearer {token}"}
        idle, _ = memory_mib(proc.pid)
        with httpx.Client(base_url=f"http://{host}:{port}", headers=headers, timeout=60) as http:
            started = time.monotonic()
            response = http.post(
                "/courses/bench/documents",
                files={"file": ("textbook.pdf", data, "application/pdf")},
            )
            response.raise_for_status()
            doc_id = response.json()["id"]

            def read() -> tuple[str, int, int, str]:
                view = http.get(f"/documents/{doc_id}").json()
                return view["status"], view["pages"], view["chunks"], view.get("reason", "")

            pages, chunks = wait_ready(read, started)
            seconds = time.monotonic() - started
        _, peak = memory_mib(proc.pid)
        time.sleep(SETTLE_S)
        after, _ = memory_mib(proc.pid)
        return Result(seconds, pages, chunks, idle, peak, after)
    finally:
        stop(proc)


def run_worker(
    setup: Mapping[str, str], code: Code, data: bytes, root: Path, stack: Mapping[str, str]
) -> Result:
    """One ``livetutor worker`` indexes a document sent through the broker."""
    extra = {
        **stack,
        **setup,
        "LIVETUTOR_DATA_DIR": str(root / "data"),
        "LIVETUTOR_WORKER_METRICS_PORT": "0",
    }
    env = child_env(code, extra)
    root.mkdir(parents=True)
    with (root / "worker.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "livetutor"), "worker", "--concurrency", "1"],
            cwd=code.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert proc.stdout is not None
        if "metrics on http://" not in proc.stdout.readline().decode():
            raise RuntimeError(f"the worker did not start; see {root / 'worker.log'}")
        settings = Settings.from_env(extra)
        ingest = Ingest.create(settings)
        name = Path(root).name
        record, _ = ingest.add_upload(f"bench-{name}", "textbook.pdf", data, user="bench")
        idle, _ = memory_mib(proc.pid)
        started = time.monotonic()
        create_celery(settings).send_task("livetutor.index_document", args=[record.id])

        def read() -> tuple[str, int, int, str]:
            current = ingest.kb.get_document(record.id)
            if current is None:
                raise RuntimeError("the document vanished")
            return current.status, current.pages, current.chunks, current.reason

        pages, chunks = wait_ready(read, started)
        seconds = time.monotonic() - started
        _, peak = memory_mib(proc.pid)
        time.sleep(SETTLE_S)
        after, _ = memory_mib(proc.pid)
        ingest.kb.close()
        return Result(seconds, pages, chunks, idle, peak, after)
    finally:
        stop(proc)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default=",".join(SETUPS))
    parser.add_argument("--paths", default="pod,worker", help="pod, worker or both")
    parser.add_argument("--baseline", help="also run the code of this commit (before)")
    parser.add_argument("--after", help="run this commit's code instead of the working tree")
    args = parser.parse_args()
    configure("warning", json=False)
    paths = args.paths.split(",")
    print(machine())
    data = TEXTBOOK.read_bytes()
    root = Path(tempfile.mkdtemp(prefix="livetutor-ingest-"))
    codes = [
        unpack(args.after, root / "after", "after") if args.after else Code("this tree", REPO_ROOT)
    ]
    if args.baseline:
        codes.insert(0, unpack(args.baseline, root / "baseline", "before"))
    redis = chroma = None
    stack: dict[str, str] = {}
    if "worker" in paths:
        redis = RedisNode(base_dir=root)
        await redis.start()
        chroma = ChromaServer(root / "chroma", root / "chroma.log")
        stack = {"REDIS_URL": redis.url, "CHROMA_URL": chroma.start()}
    rows = []
    try:
        for number, (name, path, code) in enumerate(
            (n, p, c) for n in args.embedders.split(",") for p in paths for c in codes
        ):
            setup = SETUPS[name]
            run_root = root / f"run-{number}"
            if path == "pod":
                result = await asyncio.to_thread(run_pod, setup, code, data, run_root)
            else:
                result = await asyncio.to_thread(run_worker, setup, code, data, run_root, stack)
            rows.append(
                [
                    path,
                    name,
                    code.label,
                    fmt(result.pages),
                    fmt(result.chunks),
                    fmt(result.seconds, 1),
                    fmt(result.chunks / result.seconds, 1),
                    fmt(result.idle_mib, 0),
                    fmt(result.peak_mib, 0),
                    fmt(result.after_mib, 0),
                ]
            )
            print(
                f"{path} {name} {code.label}: {result.seconds:.1f} s, "
                f"peak {result.peak_mib:.0f} MiB, after {result.after_mib:.0f} MiB",
                flush=True,
            )
    finally:
        if chroma is not None:
            chroma.stop()
        if redis is not None:
            await redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(
        table(
            [
                "path",
                "embedder",
                "code",
                "pages",
                "chunks",
                "seconds",
                "chunks/s",
                "idle MiB",
                "peak MiB",
                "after MiB",
            ],
            rows,
            title="textbook indexed by one process (RSS of that process: idle before, "
            "peak = VmHWM, after = 3 s after ready)",
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
