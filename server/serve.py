"""Running the app under uvicorn, with a drain before uvicorn's own shutdown.

uvicorn closes every WebSocket with 1012 as soon as it shuts down; the
:class:`Server` here first drains (readiness 503, new sockets refused,
clients told to reconnect, running answers given ``drain_s`` to finish),
then hands over to uvicorn.

``GET /metrics`` has a listener of its own (``LIVETUTOR_METRICS_PORT``),
started before the main one and stopped after it, so a draining pod can
still be scraped.
"""

from __future__ import annotations

import asyncio
import gc
import socket

import structlog
import uvicorn
from starlette.applications import Starlette

from core.settings import Settings, SettingsError
from server.runtime import Runtime

log = structlog.get_logger("livetutor.serve")
# The garbage collector's thresholds once the heap is frozen. An answer's objects live
# for its few seconds: with the default first threshold (700), a pod streaming a
# thousand answers collected about 80 times a second and promoted each answer's objects
# into the oldest generation, whose full collections then came about once a second and
# stopped the loop for about 90 ms each (12 % of its time in all, profiled under
# bench.stream_throughput). Collected this rarely, most of them are gone first. The bare
# baselines of the benchmarks start through serve_announced too, and get the same.
GC_THRESHOLDS = (50_000, 20, 10)


def uvicorn_config(app: Starlette, settings: Settings, **overrides: object) -> uvicorn.Config:
    """uvicorn settings that match the architecture's measured choices."""
    ws = settings.ws
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        # websockets-sansio with deflate off: about 25 KB per idle connection.
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_max_size": ws.max_frame_bytes,
        "ws_ping_interval": ws.heartbeat_s,
        "ws_ping_timeout": ws.heartbeat_timeout_s,
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": max(settings.drain_s, 1.0) + ws.close_timeout_s,
        "backlog": 4096,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


def metrics_config(app: Starlette, settings: Settings, **overrides: object) -> uvicorn.Config:
    """uvicorn settings of the metrics listener: plain HTTP on ``LIVETUTOR_METRICS_PORT``."""
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.metrics_port,
        "ws": "none",
        "lifespan": "off",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 1.0,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


class Server(uvicorn.Server):
    """uvicorn's server with the pod's drain in front of its shutdown, and its metrics listener."""

    def __init__(
        self,
        config: uvicorn.Config,
        metrics: uvicorn.Config | None = None,
        *,
        metrics_socket: socket.socket | None = None,
    ) -> None:
        super().__init__(config)
        self.metrics = uvicorn.Server(metrics) if metrics is not None else None
        # Bound already by the supervisor of several pods (server.workers), else bound here.
        self.metrics_socket = metrics_socket

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Open the metrics listener, then start as uvicorn does."""
        if self.metrics is not None:
            await _listen(self.metrics, self.metrics_socket)
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Drain the runtime, then shut down as uvicorn does, then close the metrics listener.

        The listener stays open while draining, so load balancers see
        ``/health/ready`` answer 503 and new WebSockets are refused with 503.
        """
        app = self.config.app
        runtime: Runtime | None = getattr(getattr(app, "state", None), "runtime", None)
        if runtime is not None:
            await runtime.drain()
        await super().shutdown(sockets)
        if self.metrics is not None and self.metrics.started:
            await self.metrics.shutdown()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        port: int = self.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def metrics_port(self) -> int | None:
        """The metrics listener's bound port, None without one."""
        if self.metrics is None or not self.metrics.started:
            return None
        port: int = self.metrics.servers[0].sockets[0].getsockname()[1]
        return port


def listen_socket(
    host: str, port: int, *, setting: str = "LIVETUTOR_METRICS_PORT", backlog: int | None = None
) -> socket.socket:
    """A listening socket on ``host:port``; one that cannot be bound is a :class:`SettingsError`.

    The error names ``setting``, rather than uvicorn's log line and exit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot listen on {host}:{port}: {exc}") from exc


async def _listen(server: uvicorn.Server, sock: socket.socket | None = None) -> None:
    """Start ``server`` on ``sock`` (bound here if None) without its own main loop or signals."""
    config = server.config
    if not config.loaded:
        config.load()
    server.lifespan = config.lifespan_class(config)
    if sock is None:
        sock = listen_socket(config.host, config.port)
    await server.startup(sockets=[sock])


def serve_announced(server: uvicorn.Server, name: str) -> bool:
    """Run ``server`` until it stops; once listening, print one line with its address.

    The line (``<name> listening on http://HOST:PORT``) goes to stdout, so
    scripts and tests that start a server on port 0 learn where to connect;
    a metrics listener's line (``<name> metrics on http://HOST:PORT/metrics``)
    follows it.
    The event loop is the one uvicorn picks for its config (uvloop by default).
    Returns False if the server never started.
    """

    async def run() -> None:
        serving = asyncio.create_task(server.serve())
        # uvicorn offers no start-up event to wait on.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if server.started:
            # What start-up loaded (embedders, the runtime, every module) lives as long as
            # the process: frozen, a full garbage collection no longer walks it, which
            # stalled the loop for tens of milliseconds each time.
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            log.info(
                "serve.heap_frozen",
                objects=gc.get_freeze_count(),
                gc_thresholds=list(gc.get_threshold()),
            )
            host, port = server.servers[0].sockets[0].getsockname()[:2]
            print(f"{name} listening on http://{host}:{port}", flush=True)
            metrics = server.metrics if isinstance(server, Server) else None
            if metrics is not None and metrics.started:
                host, port = metrics.servers[0].sockets[0].getsockname()[:2]
                print(f"{name} metrics on http://{host}:{port}/metrics", flush=True)
        await serving

    # uvicorn's own choice of loop (``loop="auto"``: uvloop where it is installed), which
    # ``asyncio.run`` alone would not apply.
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(run())
    return bool(server.started)
