"""The local cluster with real processes: redis-server, Sentinels and ``livetutor serve`` pods."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import psutil
import pytest

from devtools.cluster import (
    DevCluster,
    MissingBinaryError,
    RedisNode,
    StartError,
    redis_command,
)
from realtime.client import TutorClient


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes among ``procs`` still running (zombies count as gone)."""
    running = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
        except psutil.NoSuchProcess:
            pass
    return running


def cluster_processes(cluster: DevCluster) -> list[psutil.Process]:
    pids = [node.pid for node in [*cluster.redis, *cluster.sentinels, *cluster.pods]]
    return [psutil.Process(pid) for pid in pids]


@pytest.fixture
async def cluster() -> AsyncIterator[DevCluster]:
    """Master, replica, three Sentinels that act after 500 ms, two pods."""
    async with DevCluster(pods=2, down_after_ms=500) as running:
        yield running


async def test_every_pod_answers_live_probe(cluster: DevCluster) -> None:
    """Both pods answer ``/health/live`` with 200."""
    async with httpx.AsyncClient(timeout=5) as http:
        statuses = [
            (await http.get(f"{pod.http_url}/health/live")).status_code for pod in cluster.pods
        ]
    assert statuses == [200, 200]


async def test_token_opens_a_websocket_on_every_pod(cluster: DevCluster) -> None:
    """The cluster's token is accepted by each pod, which greets with its own pod name."""
    token = cluster.token("alice")
    pods = []
    for pod in cluster.pods:
        async with await TutorClient.connect(pod.ws_url, token) as client:
            pods.append((client.welcome["user"], client.welcome["pod"]))
    assert pods == [("alice", "pod-0"), ("alice", "pod-1")]


async def test_sentinels_agree_on_the_master(cluster: DevCluster) -> None:
    """Every Sentinel names the master the cluster started, and ``master()`` returns it."""
    master = cluster.redis[0]
    addresses = [await sentinel.master_address() for sentinel in cluster.sentinels]
    assert addresses == [("127.0.0.1", master.port)] * 3
    assert await cluster.master() is master


async def test_killing_the_master_promotes_the_replica(cluster: DevCluster) -> None:
    """After SIGKILL of the master, the Sentinels promote the replica within 10 s."""
    master, replica = cluster.redis
    await master.kill()
    new_port = await cluster.wait_for_failover(master.port, timeout_s=10)
    info = await redis_command(replica.port, "INFO", "replication")
    assert new_port == replica.port
    assert await cluster.master() is replica
    assert info["role"] == "master"


async def test_exit_stops_every_process_and_removes_the_directory() -> None:
    """Leaving the context stops every process it started and deletes its temporary directory."""
    async with DevCluster(pods=2) as cluster:
        procs = cluster_processes(cluster)
        root = cluster.root
        assert len(alive(procs)) == 7
    assert alive(procs) == []
    assert not root.exists()


async def test_pod_failing_to_start_reports_its_stderr_and_leaves_nothing() -> None:
    """An invalid pod setting raises StartError quoting the pod's stderr; nothing keeps running."""
    before = set(psutil.Process().children(recursive=True))
    with pytest.raises(StartError, match="MAX_FRAME_BYTES must be at least 1024") as caught:
        async with DevCluster(pods=2, pod_env={"LIVETUTOR_MAX_FRAME_BYTES": "10"}):
            pass
    left = alive(list(set(psutil.Process().children(recursive=True)) - before))
    assert "pod-0 exited with code 2" in str(caught.value)
    assert left == []


async def test_redis_node_restarts_on_the_same_port() -> None:
    """A killed node comes back on its port and answers PING."""
    node = RedisNode()
    await node.start()
    try:
        port, pid = node.port, node.pid
        await node.kill()
        await node.restart()
        assert (node.port, await redis_command(node.port, "PING")) == (port, True)
        assert node.pid != pid
    finally:
        await node.stop()


async def test_node_on_a_taken_port_fails_instead_of_adopting_the_other_server() -> None:
    """A node given a port another Redis holds raises StartError; it never reports ready."""
    first = RedisNode()
    await first.start()
    try:
        with pytest.raises(StartError, match="Address already in use"):
            await RedisNode(port=first.port).start()
    finally:
        await first.stop()


async def test_missing_redis_server_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without redis-server on the PATH, starting a node names the package and leaves no files."""
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(MissingBinaryError, match="install the 'redis-server' package"):
        await RedisNode().start()
    assert os.listdir(tmp_path) == []


async def test_dev_cluster_command_prints_table_and_token_and_stops_on_sigint(
    tmp_path: Path,
) -> None:
    """``livetutor dev-cluster --pods 1`` prints processes and a working token; SIGINT stops all."""
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "server.cli", "dev-cluster", "--pods", "1"],
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "LIVETUTOR_LOG_LEVEL": "warning"},
        )
    children: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or "Ctrl-C stops everything" not in lines[-1]:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, f"dev-cluster exited early: {stderr_path.read_text()}"
            lines.append(line)
        output = "".join(lines)
        children = psutil.Process(proc.pid).children(recursive=True)
        token = next(line.split("=", 1)[1].strip() for line in lines if "LIVETUTOR_TOKEN=" in line)
        ws_url = next(word for word in output.split() if word.startswith("ws://127.0.0.1:"))
        async with await TutorClient.connect(ws_url, token) as client:
            user = client.welcome["user"]

        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 30)
        left = alive(children)
    finally:
        for child in alive(children):
            child.kill()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert all(name in output for name in ("redis master", "redis replica", "sentinel-2", "pod-0"))
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "alice"
    assert user == "alice"
    # Master, replica, three Sentinels, the pod, the chromadb server and the document worker.
    assert len(children) == 8
    assert "worker: metrics on" in output
    assert code == 0
    assert left == []
