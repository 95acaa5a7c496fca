"""A local cluster of real processes: Redis master, replica, Sentinels and server pods.

For development (``livetutor dev-cluster``), tests and benchmarks. Every
process listens on 127.0.0.1 on a free port, writes its output to a file in
the cluster's directory (so no pipe ever fills) and runs in its own session,
so a Ctrl-C in the terminal reaches only the controlling process, which then
stops the others in order. Nothing here speaks the LiveTutor protocol; it only
starts, probes and stops processes.

    async with DevCluster(pods=2) as cluster:
        master, replica = cluster.redis
        await master.kill()
        new_port = await cluster.wait_for_failover(master.port)

Errors::

    LiveTutorError                (core.errors)
    └── ClusterError              a cluster process could not be managed
        ├── MissingBinaryError    redis-server is not installed
        ├── ClusterStateError     an operation that the process's state does not allow
        ├── StartError            a process exited or did not become ready in time
        └── FailoverTimeout       the Sentinels did not name a new master in time
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from core.auth import Role, TokenCodec, load_secret
from core.errors import LiveTutorError
from core.settings import Settings

HOST = "127.0.0.1"
REDIS_PACKAGE = "redis-server"  # the Debian/Ubuntu package that ships redis-server

_POLL_S = 0.05
_PROBE_TIMEOUT_S = 1.0
_PORT_ATTEMPTS = 3
_TAIL_BYTES = 4_000
_LISTENING = re.compile(rb"LiveTutor listening on http://127\.0\.0\.1:(\d+)")
# The only settings a token depends on; everything else in the pod env is the pods' business.
_AUTH_ENV = ("LIVETUTOR_JWT_SECRET", "LIVETUTOR_JWT_ISSUER")
_UNREACHABLE = (RedisError, OSError)


class ClusterError(LiveTutorError):
    """A process of the local cluster could not be started, probed or stopped."""


class MissingBinaryError(ClusterError):
    """``redis-server`` is not on the PATH."""


class ClusterStateError(ClusterError):
    """The operation does not fit the process's state (start twice, port before start)."""


class StartError(ClusterError):
    """A process exited during start-up or did not become ready in time."""

    def __init__(self, message: str, log_path: Path, log_tail: str) -> None:
        super().__init__(f"{message}; last output ({log_path}):\n{log_tail}")
        self.log_path = log_path
        self.log_tail = log_tail

    @property
    def port_in_use(self) -> bool:
        """True when the process failed because another one took its port first."""
        return "Address already in use" in self.log_tail


class FailoverTimeout(ClusterError):
    """The Sentinels still name the old master after the timeout."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (a race remains; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_path() -> str:
    """The ``redis-server`` executable; :class:`MissingBinaryError` naming the package if absent."""
    path = shutil.which("redis-server")
    if path is None:
        raise MissingBinaryError(
            f"redis-server not found on PATH; install the {REDIS_PACKAGE!r} package "
            f"(apt-get install {REDIS_PACKAGE})"
        )
    return path


async def redis_command(port: int, *args: str | int, timeout_s: float = _PROBE_TIMEOUT_S) -> Any:
    """Send one command to the Redis or Sentinel on ``port`` over a fresh connection."""
    client = aioredis.Redis(
        host=HOST,
        port=port,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        return await client.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


def _tail(path: Path, since: int = 0) -> str:
    """The last few KB of ``path`` written after offset ``since``."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(since, size - _TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace").strip()
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _Child:
    """One child process in its own session, its output appended to files."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ClusterStateError(f"{self.name} was never started")
        return self._proc.pid

    async def spawn(
        self,
        argv: list[str],
        *,
        stdout_path: Path,
        stderr_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``argv``; stderr goes to ``stderr_path``, or with stdout when not given."""
        if self.running:
            raise ClusterStateError(f"{self.name} is already running")
        with contextlib.ExitStack() as files:
            stdout = files.enter_context(stdout_path.open("ab"))
            stderr = (
                files.enter_context(stderr_path.open("ab"))
                if stderr_path is not None
                else asyncio.subprocess.STDOUT
            )
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=None if env is None else dict(env),
                # Its own session: a terminal's Ctrl-C reaches only us, and we stop it in order.
                start_new_session=True,
            )

    async def stop(self, timeout_s: float) -> None:
        """SIGTERM, then SIGKILL if it is still running after ``timeout_s``."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            await self.kill()
        except asyncio.CancelledError:
            # Leave nothing running; asyncio's child watcher still reaps it.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise

    async def kill(self) -> None:
        """SIGKILL and wait for the exit."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class _RedisProcess:
    """What a Redis server and a Sentinel share: a directory, a port, start with a probe."""

    def __init__(
        self,
        name: str,
        *,
        port: int | None,
        base_dir: Path | None,
        start_timeout_s: float,
        stop_timeout_s: float,
    ) -> None:
        self.name = name
        self._port = free_port() if port is None else port
        # Once a process has listened on a port, restarts keep it.
        self._port_fixed = port is not None
        self._base_dir = base_dir
        self._dir: Path | None = None
        self._own_dir = False
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._child = _Child(name)

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1."""
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{HOST}:{self._port}"

    @property
    def pid(self) -> int:
        """The process id of the last start."""
        return self._child.pid

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self._child.running

    @property
    def directory(self) -> Path:
        """The working directory (exists once started)."""
        if self._dir is None:
            raise ClusterStateError(f"{self.name} was never started")
        return self._dir

    @property
    def log_path(self) -> Path:
        """Everything the process printed."""
        return self.directory / f"{self.name}.log"

    async def start(self) -> None:
        """Start the process and wait until it answers; retry on a port taken meanwhile."""
        if self.running:
            raise ClusterStateError(f"{self.name} is already running")
        executable = redis_server_path()
        self._make_dir()
        try:
            await self._start_attempts(executable)
        except BaseException:
            self._remove_own_dir()
            raise
        self._port_fixed = True

    async def stop(self) -> None:
        """SIGTERM, SIGKILL after a bound; remove the directory if this node made it."""
        await self._child.stop(self._stop_timeout_s)
        self._remove_own_dir()

    async def kill(self) -> None:
        """SIGKILL, as a crash would (the directory stays, so :meth:`restart` works)."""
        await self._child.kill()

    async def restart(self) -> None:
        """Stop if running, then start again on the same port."""
        await self._child.stop(self._stop_timeout_s)
        await self.start()

    async def _start_attempts(self, executable: str) -> None:
        attempts = 1 if self._port_fixed else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            since = _size(self.log_path)
            self._prepare()
            await self._child.spawn([executable, *self._args()], stdout_path=self.log_path)
            try:
                await self._wait_ready(since)
                return
            except StartError as exc:
                await self._child.kill()
                if not exc.port_in_use or attempt == attempts:
                    raise
                self._port = free_port()
            except BaseException:
                await self._child.kill()
                raise

    def _remove_own_dir(self) -> None:
        if self._own_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _make_dir(self) -> None:
        if self._dir is not None:
            return
        if self._base_dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"livetutor-{self.name}-"))
            self._own_dir = True
        else:
            self._dir = self._base_dir / self.name
            self._dir.mkdir(parents=True, exist_ok=True)

    async def _wait_ready(self, since: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        while True:
            if not self._child.running:
                message = f"{self.name} exited with code {self._child.returncode} during start-up"
                raise StartError(message, self.log_path, _tail(self.log_path, since))
            with contextlib.suppress(*_UNREACHABLE):
                if await self._answers_as_ours() and await self._ready():
                    return
            if loop.time() >= deadline:
                message = f"{self.name} did not answer within {self._start_timeout_s}s"
                raise StartError(message, self.log_path, _tail(self.log_path, since))
            await asyncio.sleep(_POLL_S)

    async def _answers_as_ours(self) -> bool:
        """True when our process, not one that took the port first, answers on it."""
        info = await redis_command(self.port, "INFO", "server")
        return bool(info.get("process_id") == self._child.pid)

    def _prepare(self) -> None:
        """Hook run before each spawn."""

    def _args(self) -> list[str]:
        raise NotImplementedError

    async def _ready(self) -> bool:
        """Hook: whether the process, answering on its port, is ready for use."""
        return True


class RedisNode(_RedisProcess):
    """A ``redis-server`` on 127.0.0.1 without persistence, optionally a replica."""

    def __init__(
        self,
        *,
        replicaof: tuple[str, int] | None = None,
        port: int | None = None,
        name: str = "redis",
        base_dir: Path | None = None,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            name,
            port=port,
            base_dir=base_dir,
            start_timeout_s=start_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
        self.replicaof = replicaof

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self.port}/0"

    async def wait_for_sync(self, timeout_s: float = 10.0) -> None:
        """Wait until this replica's link to its master is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            with contextlib.suppress(*_UNREACHABLE):
                info = await redis_command(self.port, "INFO", "replication")
                if info.get("master_link_status") == "up":
                    return
            if loop.time() >= deadline:
                raise ClusterError(f"{self.name}: replication link not up after {timeout_s}s")
            await asyncio.sleep(_POLL_S)

    def _args(self) -> list[str]:
        args = [
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            # Redis 7 waits 5 s by default for more replicas before a diskless full sync.
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if self.replicaof is not None:
            host, port = self.replicaof
            args += ["--replicaof", host, str(port)]
        return args


class SentinelNode(_RedisProcess):
    """``redis-server --sentinel`` watching one master, with a generated config file."""

    def __init__(
        self,
        *,
        master_port: int,
        master_name: str = "livetutor",
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        port: int | None = None,
        name: str = "sentinel",
        base_dir: Path | None = None,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            name,
            port=port,
            base_dir=base_dir,
            start_timeout_s=start_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
        self.master_port = master_port
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def config_path(self) -> Path:
        """The config file; Sentinel rewrites it with what it learns."""
        return self.directory / "sentinel.conf"

    async def master_address(self) -> tuple[str, int] | None:
        """The master this Sentinel names now (``None`` if it knows no such master)."""
        reply = await redis_command(
            self.port, "SENTINEL", "get-master-addr-by-name", self.master_name
        )
        if not reply:
            return None
        host, port = reply
        return str(host), int(port)

    async def master_state(self) -> dict[str, str]:
        """``SENTINEL MASTER``: flags, ``num-slaves``, ``num-other-sentinels`` and the rest."""
        reply = await redis_command(self.port, "SENTINEL", "MASTER", self.master_name)
        if isinstance(reply, dict):
            return {str(k): str(v) for k, v in reply.items()}
        items = [str(item) for item in reply]
        return dict(zip(items[::2], items[1::2], strict=True))

    def _prepare(self) -> None:
        # A restart keeps the config Sentinel rewrote (current master, known peers).
        if self._port_fixed and self.config_path.exists():
            return
        name = self.master_name
        lines = [
            f"port {self.port}",
            f"bind {HOST}",
            f'dir "{self.directory}"',
            "sentinel resolve-hostnames no",
            f"sentinel monitor {name} {HOST} {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _args(self) -> list[str]:
        return [str(self.config_path), "--sentinel"]

    async def _ready(self) -> bool:
        return await self.master_address() is not None


class ServerPod:
    """``livetutor serve --port 0`` in its own process; stdout and stderr go to files."""

    def __init__(
        self,
        name: str,
        *,
        data_dir: Path,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.log_path = log_dir / f"{name}.log"
        self.stdout_path = log_dir / f"{name}.out"
        self.env = dict(env or {})
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._port: int | None = None
        self._child = _Child(name)

    @property
    def port(self) -> int:
        """The port the pod bound."""
        if self._port is None:
            raise ClusterStateError(f"{self.name} has not started listening")
        return self._port

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/ws``."""
        return f"ws://{HOST}:{self.port}/ws"

    @property
    def listening(self) -> bool:
        """True once the pod has reported its port."""
        return self._port is not None

    @property
    def pid(self) -> int:
        """The process id."""
        return self._child.pid

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self._child.running

    async def start(self) -> None:
        """Start the pod and wait for its ``LiveTutor listening on`` line."""
        argv = [sys.executable, "-m", "server.cli", "serve"]
        argv += ["--host", HOST, "--port", "0", "--data-dir", str(self.data_dir)]
        # Pods share this host: each takes a free metrics port too.
        argv += ["--metrics-port", "0"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        since, stderr_since = _size(self.stdout_path), _size(self.log_path)
        await self._child.spawn(
            argv,
            stdout_path=self.stdout_path,
            stderr_path=self.log_path,
            env={**os.environ, **self.env},
        )
        try:
            self._port = await self._wait_listening(since, stderr_since)
        except BaseException:
            await self._child.kill()
            raise

    async def stop(self) -> None:
        """SIGTERM (the pod drains), SIGKILL if it is still running after a bound."""
        await self._child.stop(self._stop_timeout_s)

    async def kill(self) -> None:
        """SIGKILL, as a crash would."""
        await self._child.kill()

    async def _wait_listening(self, since: int, stderr_since: int) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        while True:
            with self.stdout_path.open("rb") as f:
                f.seek(since)
                match = _LISTENING.search(f.read())
            if match:
                return int(match.group(1))
            if not self._child.running:
                message = f"{self.name} exited with code {self._child.returncode} during start-up"
                raise StartError(message, self.log_path, _tail(self.log_path, stderr_since))
            if loop.time() >= deadline:
                message = f"{self.name} did not start listening within {self._start_timeout_s}s"
                raise StartError(message, self.log_path, _tail(self.log_path, stderr_since))
            await asyncio.sleep(_POLL_S)


class DevCluster:
    """Redis master, optional replica, Sentinels and server pods, started and stopped together.

    ``redis`` holds the master as started, then the replica; ``sentinels`` and
    ``pods`` the rest, in start order. All pods share one data directory, hence
    one SQLite file and one JWT secret.
    """

    def __init__(
        self,
        pods: int = 2,
        sentinels: int = 3,
        replica: bool = True,
        master_name: str = "livetutor",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        pod_env: dict[str, str] | None = None,
        base_dir: Path | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        if pods < 0 or sentinels < 0:
            raise ClusterError("pods and sentinels must not be negative")
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.start_timeout_s = start_timeout_s
        self.redis: list[RedisNode] = []
        self.sentinels: list[SentinelNode] = []
        self.pods: list[ServerPod] = []
        self._want_pods = pods
        self._want_sentinels = sentinels
        self._want_replica = replica
        self._pod_env = dict(pod_env or {})
        self._base_dir = base_dir
        self._root: Path | None = None
        self._next_pod = 0

    @property
    def root(self) -> Path:
        """The directory holding every process's files."""
        if self._root is None:
            raise ClusterStateError("the cluster has not been started")
        return self._root

    @property
    def data_dir(self) -> Path:
        """The pods' shared data directory."""
        return self.root / "data"

    async def __aenter__(self) -> DevCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start master, replica, Sentinels, then pods; on any failure stop what started."""
        if self._root is not None:
            raise ClusterStateError("the cluster is already started")
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every process in reverse start order; remove the directory unless given."""
        errors: list[BaseException] = []
        pods, self.pods = self.pods, []
        # Pods drain concurrently: each may wait for running answers.
        results = await asyncio.gather(*(pod.stop() for pod in pods), return_exceptions=True)
        errors += [r for r in results if isinstance(r, BaseException)]
        nodes: list[SentinelNode | RedisNode] = [*self.sentinels, *self.redis]
        self.sentinels, self.redis = [], []
        for node in reversed(nodes):
            try:
                await node.stop()
            except Exception as exc:
                errors.append(exc)
        if self._root is not None and self._base_dir is None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._root = None
        if errors:
            raise ClusterError(f"stopping the cluster failed: {errors[0]!r}") from errors[0]

    async def add_pod(self) -> ServerPod:
        """Start one more pod, named ``pod-<i>``, on the cluster's Redis."""
        name = f"pod-{self._next_pod}"
        self._next_pod += 1
        pod = ServerPod(
            name,
            data_dir=self.data_dir,
            log_dir=self.root,
            env=self._env_for(name),
            start_timeout_s=self.start_timeout_s,
        )
        self.pods.append(pod)
        await pod.start()
        return pod

    async def master(self) -> RedisNode:
        """The Redis node that is master now: as the first answering Sentinel names it."""
        if not self.sentinels:
            return self.redis[0]
        for sentinel in self.sentinels:
            with contextlib.suppress(*_UNREACHABLE):
                address = await sentinel.master_address()
                if address is not None:
                    return self._node_on(address[1])
        raise ClusterError("no Sentinel answered")

    async def wait_for_failover(self, old_port: int, timeout_s: float = 15.0) -> int:
        """Wait until every answering Sentinel names the same master other than ``old_port``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            ports = await self._master_ports()
            if len(ports) == 1 and old_port not in ports:
                return ports.pop()
            if loop.time() >= deadline:
                raise FailoverTimeout(
                    f"Sentinels name {sorted(ports)} after {timeout_s}s (old master {old_port})"
                )
            await asyncio.sleep(_POLL_S)

    def token(self, user: str, courses: tuple[str, ...] = ("demo",), role: Role = "learner") -> str:
        """A token every pod accepts (signed with the shared data directory's secret)."""
        settings = self._auth_settings()
        codec = TokenCodec(load_secret(settings), settings.auth.jwt_issuer)
        return codec.issue(user, role=role, courses=courses, ttl_s=settings.auth.token_ttl_s)

    def describe(self) -> str:
        """A table of every process: role (as started), name, address, pid."""
        rows = [("ROLE", "NAME", "ADDRESS", "PID")]
        for i, node in enumerate(self.redis):
            role = "redis master" if i == 0 else "redis replica"
            rows.append((role, node.name, node.url, _pid(node)))
        for sentinel in self.sentinels:
            rows.append(("sentinel", sentinel.name, sentinel.address, _pid(sentinel)))
        for pod in self.pods:
            address = pod.http_url if pod.listening else "-"
            rows.append(("pod", pod.name, address, _pid(pod)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = (
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        )
        return "\n".join(line.rstrip() for line in lines)

    async def _start(self) -> None:
        if self._base_dir is None:
            self._root = Path(tempfile.mkdtemp(prefix="livetutor-cluster-"))
        else:
            self._root = self._base_dir
            self._root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        # Made once here, so pods starting together never race to create it.
        load_secret(self._auth_settings())

        master = RedisNode(name="redis-0", base_dir=self.root)
        self.redis.append(master)
        await master.start()
        if self._want_replica:
            replica = RedisNode(name="redis-1", replicaof=(HOST, master.port), base_dir=self.root)
            self.redis.append(replica)
            await replica.start()
            await replica.wait_for_sync(self.start_timeout_s)
        for i in range(self._want_sentinels):
            sentinel = SentinelNode(
                name=f"sentinel-{i}",
                master_port=master.port,
                master_name=self.master_name,
                quorum=self._want_sentinels // 2 + 1,
                down_after_ms=self.down_after_ms,
                failover_timeout_ms=self.failover_timeout_ms,
                base_dir=self.root,
            )
            self.sentinels.append(sentinel)
            await sentinel.start()
        await self._wait_for_discovery()
        for _ in range(self._want_pods):
            await self.add_pod()

    async def _wait_for_discovery(self) -> None:
        """Wait until each Sentinel knows the others and the replica.

        Before that a failover cannot happen: Sentinels find each other through
        hello messages on the master, sent every 2 s.
        """
        if not self.sentinels:
            return
        others, replicas = str(len(self.sentinels) - 1), str(len(self.redis) - 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout_s
        for sentinel in self.sentinels:
            while True:
                with contextlib.suppress(*_UNREACHABLE):
                    state = await sentinel.master_state()
                    if state.get("num-other-sentinels") == others and (
                        state.get("num-slaves") == replicas
                    ):
                        break
                if loop.time() >= deadline:
                    raise ClusterError(f"{sentinel.name} did not discover its peers in time")
                await asyncio.sleep(_POLL_S)

    async def _master_ports(self) -> set[int]:
        ports = set()
        for sentinel in self.sentinels:
            with contextlib.suppress(*_UNREACHABLE):
                address = await sentinel.master_address()
                if address is not None:
                    ports.add(address[1])
        return ports

    def _node_on(self, port: int) -> RedisNode:
        for node in self.redis:
            if node.port == port:
                return node
        raise ClusterError(f"the Sentinels name a master on port {port} that is not ours")

    def pod_env(self, name: str) -> dict[str, str]:
        """The environment a process named ``name`` needs to join the cluster (Redis, data)."""
        return self._env_for(name)

    def _env_for(self, name: str) -> dict[str, str]:
        env = {
            "LIVETUTOR_POD_NAME": name,
            "LIVETUTOR_DATA_DIR": str(self.data_dir),
            "LIVETUTOR_LOG_JSON": "true",
        }
        if self.sentinels:
            env["REDIS_SENTINELS"] = ",".join(s.address for s in self.sentinels)
            env["REDIS_MASTER_NAME"] = self.master_name
            env["REDIS_URL"] = ""  # not one inherited from the shell
        else:
            env["REDIS_URL"] = self.redis[0].url
            env["REDIS_SENTINELS"] = ""
        return env | self._pod_env

    def _auth_settings(self) -> Settings:
        merged = {**os.environ, **self._pod_env}
        env = {name: merged[name] for name in _AUTH_ENV if name in merged}
        return Settings.from_env(env, data_dir=self.data_dir)


def _pid(process: RedisNode | SentinelNode | ServerPod) -> str:
    return str(process.pid) if process.running else "exited"
