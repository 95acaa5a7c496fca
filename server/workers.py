"""Several pods on one machine: ``livetutor serve --workers N``.

One event loop per process, so a pod uses one core. To use every core of a
large machine, a supervisor process binds the listening socket once and starts
N worker processes on it; each worker is a whole pod (its own
:class:`~server.runtime.Runtime`, pod name, Redis connections and uvloop event
loop), and the kernel spreads new connections over them. The pods meet on the
Redis backplane like pods on different machines, so resume and stream
takeover work across workers, and a restarted worker is just a new pod.

The supervisor is uvicorn's :class:`~uvicorn.supervisors.Multiprocess`: it
relays SIGINT and SIGTERM to the workers (each drains as a lone pod does,
:class:`server.serve.Server`), health-checks them and restarts one that dies.
It is subclassed because uvicorn's workers are all alike, while ours differ by
their place ``index``: worker ``i`` serves ``GET /metrics`` on
``LIVETUTOR_METRICS_PORT + i``. The supervisor binds those sockets too, so a
port that is taken fails before any worker starts, port 0 gives each worker a
free port of its own, and a restarted worker keeps its predecessor's port.

Embedded parts live inside one process, so several workers need the shared
ones: Redis for the backplane, Postgres for the store, a chromadb server for
the vectors (:func:`check_shared`).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import msgspec
import structlog
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from core.datadir import make_private
from core.errors import LiveTutorError
from core.settings import Settings, SettingsError
from server.serve import Server, listen_socket

log = structlog.get_logger("livetutor.workers")

# How long the supervisor waits for every worker to serve before giving up; as long
# as the Kubernetes start-up probe allows a pod (migrations run at start).
START_TIMEOUT_S = 120.0
# A worker that does not answer the supervisor's ping this long is hung, and replaced.
HEALTHCHECK_TIMEOUT_S = 30


def check_shared(settings: Settings) -> None:
    """Refuse ``--workers N > 1`` unless every part the pods share lives outside the process."""
    missing: list[tuple[str, str]] = []
    if not settings.redis.enabled:
        missing.append(("REDIS_URL or REDIS_SENTINELS", "backplane"))
    if not settings.store.database_url.startswith(("postgres://", "postgresql://")):
        missing.append(("DATABASE_URL=postgresql://…", "SQLite store"))
    if not settings.knowledge.chroma_url:
        missing.append(("CHROMA_URL", "vector store"))
    if missing:
        names, parts = _and(name for name, _ in missing), _and(part for _, part in missing)
        raise SettingsError(
            f"--workers {settings.workers} needs {names} set: the embedded {parts} "
            f"{'lives' if len(missing) == 1 else 'live'} in one process, and each worker "
            "is a process of its own"
        )


def _and(items: Iterable[str]) -> str:
    *head, last = items
    return f"{', '.join(head)} and {last}" if head else last


def serve_workers(settings: Settings, name: str = "LiveTutor") -> int:
    """Run ``settings.workers`` pods on one listening socket until SIGINT or SIGTERM.

    Once every worker serves, prints ``<name> listening on http://HOST:PORT`` and
    then one ``<name> metrics on http://HOST:PORT/metrics`` line per worker.
    Returns 0 after a signal, 1 if a worker could not start.
    """
    check_shared(settings)
    make_private(settings.data_dir)
    sockets: list[socket.socket] = []
    try:
        main = listen_socket(settings.host, settings.port, setting="LIVETUTOR_PORT", backlog=4096)
        sockets.append(main)
        for index in range(settings.workers):
            port = settings.metrics_port + index if settings.metrics_port else 0
            if port > 65_535:
                raise SettingsError(
                    f"LIVETUTOR_METRICS_PORT: {settings.workers} workers need ports "
                    f"{settings.metrics_port} to {settings.metrics_port + settings.workers - 1}"
                )
            sockets.append(listen_socket(settings.host, port))
        # Only the supervisor reads this config (worker count, health checks) and each child
        # its logging part; every worker builds its pod's own (server.serve.uvicorn_config).
        config = uvicorn.Config(
            "server.app:create_app",
            workers=settings.workers,
            log_config=None,
            timeout_worker_healthcheck=HEALTHCHECK_TIMEOUT_S,
        )
        supervisor = Supervisor(config, main, sockets[1:], settings, name)
        supervisor.run()
    finally:
        for sock in sockets:
            sock.close()
    if supervisor.failure:
        print(f"livetutor: {supervisor.failure}", file=sys.stderr)
        return 1
    return 0


class Supervisor(Multiprocess):
    """uvicorn's supervisor, starting each worker with its own metrics socket."""

    def __init__(
        self,
        config: uvicorn.Config,
        main: socket.socket,
        metrics_sockets: list[socket.socket],
        settings: Settings,
        name: str,
    ) -> None:
        super().__init__(config, [main])
        self.settings = settings
        self.name = name
        self.metrics_sockets = metrics_sockets
        # Why the supervisor stopped on its own, if it did.
        self.failure = ""

    def spawn(self, index: int) -> Process:
        """Start worker ``index`` on the shared socket and its metrics socket."""
        sockets = [*self.sockets, self.metrics_sockets[index]]
        process = PodProcess(self.config, sockets, self.settings, index)
        process.start()
        return process

    def init_processes(self) -> None:
        """Start every worker; once all serve, print the addresses."""
        self.processes = [self.spawn(index) for index in range(self.processes_num)]
        waiting = list(self.processes)
        deadline = time.monotonic() + START_TIMEOUT_S
        while waiting:
            if self.signal_queue:
                return  # the run loop handles it: stop before ever serving
            for process in list(waiting):
                if not process.process.is_alive():
                    index = self.processes.index(process)
                    self.stop(
                        f"worker {index} stopped before it served "
                        f"(exit code {process.exitcode}; its error is above)"
                    )
                    return
                if process.is_ready(timeout=1):
                    waiting.remove(process)
            if waiting and time.monotonic() > deadline:
                self.stop(f"{len(waiting)} worker(s) did not serve within {START_TIMEOUT_S:.0f} s")
                return
        self.announce()

    def announce(self) -> None:
        """The lines scripts read: the shared address first, then each worker's metrics."""
        host, port = self.sockets[0].getsockname()[:2]
        lines = [f"{self.name} listening on http://{host}:{port}"]
        for sock in self.metrics_sockets:
            host, port = sock.getsockname()[:2]
            lines.append(f"{self.name} metrics on http://{host}:{port}/metrics")
        print("\n".join(lines), flush=True)
        log.info("workers.started", workers=[p.pid for p in self.processes])

    def stop(self, failure: str) -> None:
        """Stop every worker and the supervisor, with a reason."""
        self.failure = failure
        self.should_exit.set()

    def keep_subprocess_alive(self) -> None:
        """Replace a worker that died or hangs by a new one with the same index."""
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if self.should_exit.is_set():
                return
            if process.exitcode == STARTUP_FAILURE:
                # Its settings, sockets or start-up failed: every restart would fail alike.
                self.stop(f"worker {index} failed to start (its error is above)")
                return
            log.warning("workers.restart", index=index, pid=process.pid, code=process.exitcode)
            self.processes[index] = self.spawn(index)

    def restart_all(self) -> None:
        """SIGHUP: replace the workers one at a time; the others serve meanwhile.

        uvicorn starts each replacement before retiring the old worker, but
        the two would need the same metrics port.
        """
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            old.terminate()
            old.join()
            new = self.spawn(index)
            self.processes[index] = new
            if not new.wait_until_ready(START_TIMEOUT_S, self.should_exit):
                log.error("workers.restart_failed", index=index, pid=new.pid)
                return

    def handle_ttin(self) -> None:
        """SIGTTIN adds a worker in uvicorn; here the count is ``--workers``."""
        log.warning("workers.fixed", workers=self.processes_num, signal="SIGTTIN")

    def handle_ttou(self) -> None:
        """SIGTTOU removes a worker in uvicorn; here the count is ``--workers``."""
        log.warning("workers.fixed", workers=self.processes_num, signal="SIGTTOU")


class PodProcess(Process):
    """One worker: a whole pod on the shared socket, with metrics on a socket of its own.

    Built in the child from ``settings``; uvicorn's base builds a bare
    ``uvicorn.Server`` from the supervisor's config.
    """

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], settings: Settings, index: int
    ) -> None:
        self.settings = settings
        self.index = index
        super().__init__(config, sockets)

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover
        """Run in the child: answer pings at once, build the pod, serve until a signal."""
        listening = sockets or []
        # Pings are answered "not serving yet" while the pod is built, which takes seconds.
        threading.Thread(target=self.always_pong, daemon=True).start()
        threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
        try:
            server = self._server = build_pod(self.settings, self.index, listening[1])
        except LiveTutorError as exc:
            print(f"livetutor: worker {self.index}: {exc}", file=sys.stderr, flush=True)
            sys.exit(STARTUP_FAILURE)
        server.run(listening[:1])

    def pong(self) -> None:
        """Answer one ping: whether the pod serves (False while it is being built)."""
        self.child_conn.recv()
        self.child_conn.send(self._server is not None and self._server.started)


def _stop_when_orphaned(supervisor: int, poll_s: float = 1.0) -> None:  # pragma: no cover
    """Drain and stop once the supervisor is gone without stopping us (SIGKILL, the OOM killer).

    Otherwise orphaned workers would keep the port, and a new supervisor could not bind it.
    """
    while os.getppid() == supervisor:
        time.sleep(poll_s)
    os.kill(os.getpid(), signal.SIGTERM)


def build_pod(settings: Settings, index: int, metrics_socket: socket.socket) -> Server:
    """Worker ``index``'s pod, as ``livetutor serve`` builds a lone one."""
    from core.logs import configure
    from server.app import create_app, create_metrics_app
    from server.runtime import Runtime
    from server.serve import metrics_config, uvicorn_config

    configure(settings.log_level, settings.log_json and not sys.stderr.isatty())
    overrides: dict[str, Any] = {"workers": 1}
    if settings.pod_name:
        # Every worker is a pod of its own on the bus; a restarted one is a new pod.
        overrides["pod_name"] = f"{settings.pod_name}-{os.getpid()}"
    settings = msgspec.structs.replace(settings, **overrides)
    runtime = Runtime(settings)
    log.info("workers.worker", index=index, pod=runtime.pod)
    return Server(
        uvicorn_config(create_app(runtime=runtime), settings),
        metrics=metrics_config(create_metrics_app(runtime), settings),
        metrics_socket=metrics_socket,
    )
