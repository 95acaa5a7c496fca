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
from server.app import create_app
from server.runtime import Runtime
from server.serve import Server, uvicorn_config


@dataclass
class RunningServer:
    """A live server: its URLs, runtime and a way to mint tokens."""

    server: Server
    runtime: Runtime
    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
async def run_server(settings: Settings, **runtime_parts: Any) -> AsyncIterator[RunningServer]:
    """Start the app on 127.0.0.1 port 0; shut it down (with its drain) afterwards."""
    runtime = Runtime(settings, **runtime_parts)
    app = create_app(runtime=runtime)
    server = Server(uvicorn_config(app, settings, host="127.0.0.1", port=0))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        await asyncio.sleep(0.01)
    try:
        yield RunningServer(server, runtime, server.port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
