"""``livetutor serve --workers N``: several pods on one port, a process each."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from devtools.cluster import RedisNode
from devtools.local import ChromaServer
from realtime.client import TutorClient
from tests.support.postgres import temporary_database

LIVETUTOR = [sys.executable, "-m", "server.cli"]
QUESTION = "What makes an argument valid?"
# A worker starts a whole pod (imports, migrations, connections) on a shared machine.
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def refused(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    port = free_port()
    result = subprocess.run(
        [*LIVETUTOR, "serve", "--workers", "2", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LIVETUTOR_DATA_DIR": str(tmp_path / "data"), **env},
    )
    with socket.socket() as sock:
        # Nothing was left listening: the port is still free.
        sock.bind(("127.0.0.1", port))
    return result


def test_workers_without_redis_are_refused(tmp_path: Path) -> None:
    """--workers 2 on embedded defaults exits 2 with one line naming the settings it needs."""
    result = refused(tmp_path, {})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("livetutor: --workers 2 needs REDIS_URL or REDIS_SENTINELS")
    assert "DATABASE_URL" in lines[0] and "CHROMA_URL" in lines[0]
    assert "embedded backplane" in lines[0]


def test_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    """With Redis but the embedded SQLite store and vector store, the message names those two."""
    result = refused(tmp_path, {"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert "REDIS_URL" not in result.stderr
    assert "DATABASE_URL=postgresql://" in result.stderr and "CHROMA_URL" in result.stderr
    assert "SQLite store" in result.stderr


class Workers:
    """A running ``livetutor serve --workers 2`` and what it printed."""

    def __init__(self, proc: asyncio.subprocess.Process, lines: list[str], data_dir: Path) -> None:
        self.proc = proc
        self.url = lines[0].split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.metrics = [line.split()[-1] for line in lines[1:]]
        self.data_dir = data_dir

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def token(self) -> str:
        return subprocess.run(
            [*LIVETUTOR, "token", "--user", "alice", "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()

    def workers(self) -> list[psutil.Process]:
        """The supervisor's children that listen on the shared port."""
        found = []
        for child in psutil.Process(self.proc.pid).children():
            try:
                listening = child.net_connections("tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in listening):
                found.append(child)
        return found

    async def wait_for_workers(self, count: int, without: int) -> list[psutil.Process]:
        """Wait until ``count`` workers listen and none of them is pid ``without``."""
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                workers = await asyncio.to_thread(self.workers)
                pids = [w.pid for w in workers]
                if len(pids) == count and without not in pids:
                    return workers
                await asyncio.sleep(0.2)


@pytest.fixture
async def workers(tmp_path: Path, redis_node: RedisNode) -> AsyncIterator[Workers]:
    """``livetutor serve --workers 2 --port 0`` on Redis, Postgres and a chromadb server."""
    chroma = ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log")
    chroma_url = await asyncio.to_thread(chroma.start)
    try:
        async with temporary_database() as database_url:
            env = {
                **os.environ,
                "REDIS_URL": redis_node.url,
                "DATABASE_URL": database_url,
                "CHROMA_URL": chroma_url,
                "LIVETUTOR_METRICS_PORT": "0",
                "LIVETUTOR_LLM_OFFLINE_PACE_MS": "2",
                "LIVETUTOR_DRAIN_S": "5",
                "LIVETUTOR_LOG_LEVEL": "warning",
                # One learner asks every question of these tests.
                "LIVETUTOR_MAX_CONNECTIONS_PER_USER": "100",
                "LIVETUTOR_ASK_BURST": "1000",
                "LIVETUTOR_ASK_RATE_PER_MIN": "60000",
            }
            env.pop("LIVETUTOR_POD_NAME", None)
            with (tmp_path / "serve.log").open("wb") as log:
                proc = await asyncio.create_subprocess_exec(
                    *LIVETUTOR,
                    "serve",
                    "--workers",
                    "2",
                    "--port",
                    "0",
                    "--data-dir",
                    str(tmp_path / "data"),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    env=env,
                )
            try:
                assert proc.stdout is not None
                lines = []
                for _ in range(3):
                    line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
                    lines.append(line.decode().strip())
                assert lines[0].startswith("LiveTutor listening on http://127.0.0.1:"), lines
                yield Workers(proc, lines, tmp_path / "data")
            finally:
                if proc.returncode is None:
                    for child in psutil.Process(proc.pid).children(recursive=True):
                        child.kill()
                    proc.kill()
                    await proc.wait()
    finally:
        await asyncio.to_thread(chroma.stop)


async def ask(url: str, token: str) -> tuple[str, str]:
    """Ask on a new connection; the pod that welcomed it and the whole answer's end reason."""
    async with await TutorClient.connect(url, token, timeout_s=60) as client:
        ask_id = await client.ask(QUESTION)
        answer = await client.answer(ask_id, timeout_s=120)
        assert "Deductive validity" in answer.text
        return client.welcome["pod"], answer.reason


async def ask_until(url: str, token: str, pods: set[str], enough: Callable[[], bool]) -> None:
    """Ask on new connections, adding the pods that answer, until ``enough()``.

    The kernel hands each connection to whichever worker accepts first.
    """
    async with asyncio.timeout(START_TIMEOUT_S):
        while not enough():
            pod, reason = await ask(url, token)
            assert reason == "stop"
            pods.add(pod)


def active_connections(metrics: str) -> float:
    """The ``websocket_active_connections`` gauge in a Prometheus text page."""
    for line in metrics.splitlines():
        if line.startswith("websocket_active_connections "):
            return float(line.split()[1])
    raise AssertionError("no websocket_active_connections in /metrics")


async def connect_to_each(url: str, token: str, count: int) -> list[TutorClient]:
    """Open connections until ``count`` pods hold one each; the others are closed."""
    held: dict[str, TutorClient] = {}
    async with asyncio.timeout(START_TIMEOUT_S):
        while len(held) < count:
            client = await TutorClient.connect(url, token, timeout_s=60)
            if client.welcome["pod"] in held:
                await client.close()
            else:
                held[client.welcome["pod"]] = client
    return list(held.values())


@pytest.mark.postgres
async def test_workers_share_the_port_and_stop_on_sigterm(workers: Workers) -> None:
    """Answers arrive whole from two pods on one port; SIGTERM drains each, then exit 0."""
    token = await asyncio.to_thread(workers.token)
    pids = {w.pid for w in await workers.wait_for_workers(2, without=0)}
    answers = await asyncio.gather(*(ask(workers.ws_url, token) for _ in range(6)))
    assert [reason for _, reason in answers] == ["stop"] * 6
    pods = {pod for pod, _ in answers}
    await ask_until(workers.ws_url, token, pods, lambda: len(pods) >= 2)
    assert len(pods) == 2
    # A pod's default name ends with its process id: each worker is a pod of its own.
    assert {int(pod.rsplit("-", 1)[1]) for pod in pods} == pids

    # A connection to each pod, answering when SIGTERM comes: every worker drains.
    held = await connect_to_each(workers.ws_url, token, count=2)
    # Each worker serves its own /metrics, which counts its own connections.
    async with httpx.AsyncClient(timeout=30) as http:
        scraped = [(await http.get(url)).text for url in workers.metrics]
    assert len(set(workers.metrics)) == 2
    assert all(active_connections(text) >= 1 for text in scraped)
    running = []
    for client in held:
        ask_id = await client.ask(QUESTION)
        delta = await client.wait_for(lambda f: f["type"] == "delta")
        running.append((client, ask_id, delta["seq"]))
    children = psutil.Process(workers.proc.pid).children(recursive=True)
    workers.proc.send_signal(signal.SIGTERM)
    for client, ask_id, seen in running:
        await client.wait_for(lambda f: f["type"] == "reconnect", timeout_s=60)
        answer = await client.answer(ask_id, after=seen, timeout_s=60)
        assert answer.reason == "stop"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await client.recv(60)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    code = await asyncio.wait_for(workers.proc.wait(), 120)
    _, alive = await asyncio.to_thread(psutil.wait_procs, children, 30)
    assert code == 0
    assert alive == []


@pytest.mark.postgres
async def test_a_killed_worker_is_replaced(workers: Workers) -> None:
    """SIGKILL one worker: the supervisor starts another, which serves, and still runs two."""
    token = await asyncio.to_thread(workers.token)
    before = await workers.wait_for_workers(2, without=0)
    killed = before[0].pid
    os.kill(killed, signal.SIGKILL)
    after = await workers.wait_for_workers(2, without=killed)
    replacement = ({w.pid for w in after} - {w.pid for w in before}).pop()

    pods: set[str] = set()
    await ask_until(
        workers.ws_url, token, pods, lambda: any(p.endswith(f"-{replacement}") for p in pods)
    )
    assert killed not in {int(pod.rsplit("-", 1)[1]) for pod in pods}
    assert len(await asyncio.to_thread(workers.workers)) == 2


@pytest.mark.postgres
async def test_workers_stop_when_the_supervisor_is_killed(workers: Workers) -> None:
    """SIGKILL to the supervisor: its workers drain and exit rather than hold the port."""
    pids = [w.pid for w in await workers.wait_for_workers(2, without=0)]
    workers.proc.kill()
    await workers.proc.wait()
    _, alive = await asyncio.to_thread(
        psutil.wait_procs, [psutil.Process(pid) for pid in pids], START_TIMEOUT_S
    )
    assert alive == []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", workers.port))
