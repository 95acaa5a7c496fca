"""Run the real app under uvicorn on port 0 inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from core.auth import Role
from core.settings import Settings
from realtime.client import TutorClient
from server.app import create_app, create_metrics_app
from server.runtime import Runtime
from server.serve import Server, metrics_config, uvicorn_config


@dataclass
class RunningServer:
    """A live server: its URLs, runtime and a way to mint tokens."""

    server: Server
    runtime: Runtime
    port: int
    metrics_port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """``GET /metrics`` on the metrics listener."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def token(
        self, user: str = "alice", *, role: Role = "learner", courses: tuple[str, ...] = ("demo",)
    ) -> str:
        return self.runtime.codec.issue(user, role=role, courses=courses)

    async def client(self, user: str = "alice", **options: Any) -> TutorClient:
        return await TutorClient.connect(self.ws_url, self.token(user), **options)


@contextlib.asynccontextmanager
async def run_server(
    settings: Settings, *, host: str = "127.0.0.1", **runtime_parts: Any
) -> AsyncIterator[RunningServer]:
    """Start the app and its metrics listener on 127.0.0.1, port 0 each; shut both down after.

    ``host`` binds the app elsewhere (``0.0.0.0``: reachable on every interface).
    """
    runtime = Runtime(settings, **runtime_parts)
    server = Server(
        uvicorn_config(create_app(runtime=runtime), settings, host=host, port=0),
        metrics=metrics_config(create_metrics_app(runtime), settings, host="127.0.0.1", port=0),
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        await asyncio.sleep(0.01)
    try:
        assert server.metrics_port is not None
        yield RunningServer(server, runtime, server.port, server.metrics_port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
