"""The baseline: a bare Starlette WebSocket endpoint under uvicorn.

``/ws`` accepts (selecting the first offered subprotocol, as LiveTutor
does) and echoes each text frame back; an idle client leaves it waiting in
``receive``. It is served with the same uvicorn settings as LiveTutor
(:func:`server.serve.uvicorn_config`, read from the same environment:
websockets-sansio, per-message deflate off, the same frame limit and
heartbeat), so the difference between the two is LiveTutor's own work.

Run: ``python -m bench._echo_app --port 0``; prints
``echo listening on http://HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from bench._common import raise_nofile_limit
from core.settings import Settings
from server.serve import serve_announced, uvicorn_config


async def echo(ws: WebSocket) -> None:
    """Accept, then send every text frame back until the client goes."""
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol=offered[0] if offered else None)
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await ws.send_text(text)


def create_app() -> Starlette:
    """The echo app."""
    return Starlette(routes=[WebSocketRoute("/ws", echo)])


def main(argv: list[str] | None = None) -> int:
    """Serve the echo app until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", help="accepted for symmetry with livetutor serve; unused")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    settings = Settings.from_env(None, host=args.host, port=args.port)
    server = uvicorn.Server(uvicorn_config(create_app(), settings, log_level="warning"))
    return 0 if serve_announced(server, "echo") else 1


if __name__ == "__main__":
    sys.exit(main())
