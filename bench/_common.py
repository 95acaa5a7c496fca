"""Shared helpers: server subprocesses, client connections, statistics and tables.

Every benchmark runs the real server as a subprocess (``python -m server.cli
serve --port 0``) in a temporary data directory, waits for its one stdout
line ``... listening on http://HOST:PORT``, measures, and stops it with
SIGTERM. Baselines (the bare echo app of :mod:`bench._echo_app`) are started
the same way with the same environment.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from queue import Empty
from typing import Any, TypeVar

import psutil
from websockets.asyncio.client import ClientConnection, connect

from realtime.protocol import SUBPROTOCOL

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on http://([^:\s]+):(\d+)")

# Quiet servers: a benchmark should not measure the cost of writing log lines.
BASE_ENV: Mapping[str, str] = {
    "LIVETUTOR_LOG_LEVEL": "warning",
    "LIVETUTOR_DRAIN_S": "1",
}


class ServerStartError(RuntimeError):
    """A server subprocess exited or stayed silent instead of printing its listening line."""


def raise_nofile_limit() -> int:
    """Raise this process's soft open-file limit to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


@dataclass
class ServerProcess:
    """A server running as a subprocess, with its address and resource counters."""

    name: str
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    workdir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def ws_url(self, path: str = "/ws") -> str:
        """The WebSocket URL of ``path``."""
        return f"ws://{self.host}:{self.port}{path}"

    @property
    def ps(self) -> psutil.Process:
        """The psutil handle of the server process."""
        return psutil.Process(self.proc.pid)

    def rss_bytes(self) -> int:
        """Resident set size now."""
        rss: int = self.ps.memory_info().rss
        return rss

    def cpu_s(self) -> float:
        """User plus system CPU seconds used so far (all threads)."""
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def loop_cpu_s(self) -> float:
        """CPU seconds of the main thread alone (the one running the event loop)."""
        for thread in self.ps.threads():
            if thread.id == self.proc.pid:
                return float(thread.user_time + thread.system_time)
        return 0.0

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote to stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                print(f"[{self.name}] did not stop in {timeout_s:.0f} s; killing", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def _wait_listening(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[str, int]:
    if proc.stdout is None:
        raise ServerStartError("the server's stdout is not a pipe")
    deadline = time.monotonic() + timeout_s
    buffer = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0.0))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            code = proc.wait(5)
            raise ServerStartError(f"exited with {code} before listening; stdout: {buffer!r}")
        buffer += chunk
        found = _LISTENING.search(buffer.decode(errors="replace"))
        if found:
            return found.group(1), int(found.group(2))
    raise ServerStartError(f"no listening line within {timeout_s:.0f} s; stdout: {buffer!r}")


def collect(
    queue: Queue[T], count: int, workers: Sequence[BaseProcess], timeout_s: float
) -> list[T]:
    """``count`` items from a multiprocessing queue, failing fast if a worker process dies."""
    items: list[T] = []
    deadline = time.monotonic() + timeout_s
    while len(items) < count:
        try:
            items.append(queue.get(timeout=0.5))
            continue
        except Empty:
            pass
        dead = [w for w in workers if w.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"client process {dead[0].name} exited with {dead[0].exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(items)} of {count} client reports after {timeout_s:.0f} s")
    return items


@contextlib.contextmanager
def run_server(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    start_timeout_s: float = 60.0,
    stop_timeout_s: float = 60.0,
) -> Iterator[ServerProcess]:
    """Run ``argv`` (which gets ``--data-dir``) until its listening line; SIGTERM it at exit."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    log_path = workdir / "stderr.log"
    full_env = {**os.environ, **BASE_ENV, **(env or {})}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*argv, "--data-dir", str(workdir / "data")],
            cwd=REPO_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            # The limit is inherited; raise it in the child in case this process did not.
            preexec_fn=raise_nofile_limit,
        )
    server = ServerProcess(name, proc, "127.0.0.1", 0, workdir, log_path, dict(env or {}))
    try:
        try:
            server.host, server.port = _wait_listening(proc, start_timeout_s)
        except ServerStartError as exc:
            raise ServerStartError(f"{name}: {exc}\n{server.log_tail()}") from None
        yield server
    finally:
        code = server.stop(stop_timeout_s)
        if code not in (0, -signal.SIGTERM):
            print(f"[{name}] exited with {code}; stderr:\n{server.log_tail()}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def livetutor_server(env: Mapping[str, str] | None = None, **kwargs: Any) -> Iterator[LiveTutor]:
    """The LiveTutor server (``livetutor serve``) with a fresh signing secret."""
    secret = secrets.token_urlsafe(48)
    argv = [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--metrics-port", "0"]
    full_env = {"LIVETUTOR_JWT_SECRET": secret, **(env or {})}
    with run_server("livetutor", argv, full_env, **kwargs) as server:
        yield LiveTutor(server, secret)


@contextlib.contextmanager
def echo_server(env: Mapping[str, str] | None = None, **kwargs: Any) -> Iterator[ServerProcess]:
    """The bare Starlette echo app under uvicorn with the server's WebSocket settings."""
    argv = [sys.executable, "-m", "bench._echo_app", "--port", "0"]
    with run_server("echo", argv, env, **kwargs) as server:
        yield server


@dataclass
class LiveTutor:
    """A running LiveTutor server and the secret its tokens are signed with."""

    server: ServerProcess
    secret: str

    def token(self, user: str) -> str:
        """A token for ``user`` with the demo course."""
        return mint_token(self.secret, user)


def mint_token(secret: str, user: str) -> str:
    """A token for ``user`` with the demo course, signed with ``secret``."""
    from core.auth import TokenCodec

    return TokenCodec(secret, "livetutor").issue(user, courses=["demo"])


async def ws_connect(url: str, token: str | None = None, **options: Any) -> ClientConnection:
    """Open a client connection the way the benchmarks do: no deflate, no client pings."""
    if token:
        url = f"{url}{'&' if '?' in url else '?'}token={token}"
    settings: dict[str, Any] = {
        "subprotocols": [SUBPROTOCOL],
        "compression": None,
        "proxy": None,
        "ping_interval": None,
        "open_timeout": 60,
        "close_timeout": 5,
    }
    settings.update(options)
    return await connect(url, **settings)


# -- statistics -------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, mean and max of ``values``."""
    if not values:
        return dict.fromkeys(("p50", "p90", "p99", "mean", "max"), math.nan)
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "mean": sum(ordered) / len(ordered),
        "max": ordered[-1],
    }


# -- output -------------------------------------------------------------------


def fmt(value: float | int | str, digits: int = 1) -> str:
    """A table cell: integers with thousands separators, floats with ``digits`` decimals."""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [title] if title else []
    out += [line(headers), rule, *(line(row) for row in rows)]
    return "\n".join(out)


# The CPUs this process may use when it starts, before any pinning.
_CPUS = frozenset(os.sched_getaffinity(0))


def pin_apart(server_pid: int) -> str:
    """Pin the server (every thread) to the last CPU and this process to the others.

    Client processes started afterwards inherit this process's CPUs: a stand-in
    for clients on a machine of their own. Returns the placement, for the report.
    """
    cpus = sorted(_CPUS)
    if len(cpus) < 2:
        return "unpinned (one CPU)"
    server_cpu, client_cpus = cpus[-1], set(cpus[:-1])
    for task in os.listdir(f"/proc/{server_pid}/task"):
        os.sched_setaffinity(int(task), {server_cpu})
    os.sched_setaffinity(0, client_cpus)
    clients = ",".join(map(str, sorted(client_cpus)))
    return f"server pinned to CPU {server_cpu}, clients to CPU {clients}"


def machine() -> str:
    """One line describing where the benchmark ran."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    memory_gb = psutil.virtual_memory().total / 2**30
    load_1m = os.getloadavg()[0]
    return (
        f"machine: {os.cpu_count()} CPUs ({cpu}), {memory_gb:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
        f"load average {load_1m:.2f} at start"
    )
