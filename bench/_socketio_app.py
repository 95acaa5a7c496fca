"""The reference for :mod:`bench.fanout`: a python-socketio server on a Redis manager.

Two or more of these processes share one Redis through
``socketio.AsyncRedisManager``: an ``emit`` to a room on one server reaches
the room's members on every server. Clients send ``join`` (with a room
name, acknowledged) and then ``delta`` events; the server ``emit``s each
``delta`` unchanged to the room named in it, the way a LiveTutor pod
publishes a delta to a session. It is served by uvicorn with the same
settings as LiveTutor (:func:`server.serve.uvicorn_config`).

Run: ``python -m bench._socketio_app --port 0 --redis-url redis://127.0.0.1:6379/0``;
prints ``socketio listening on http://HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import socketio
import uvicorn

from bench._common import raise_nofile_limit
from core.settings import Settings
from server.serve import serve_announced, uvicorn_config


def create_app(redis_url: str) -> socketio.ASGIApp:
    """The socket.io app: ``join`` a room, ``delta`` re-emitted to the room it names."""
    manager = socketio.AsyncRedisManager(redis_url)
    sio = socketio.AsyncServer(
        async_mode="asgi", client_manager=manager, logger=False, engineio_logger=False
    )

    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    async def delta(sid: str, data: dict[str, Any]) -> None:
        await sio.emit("delta", data, room=data["room"])

    sio.on("join", join)
    sio.on("delta", delta)
    return socketio.ASGIApp(sio, socketio_path="socket.io")


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--data-dir", help="accepted for symmetry with livetutor serve; unused")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    settings = Settings.from_env(None, host=args.host, port=args.port)
    config = uvicorn_config(create_app(args.redis_url), settings, log_level="warning")
    server = uvicorn.Server(config)
    return 0 if serve_announced(server, "socketio") else 1


if __name__ == "__main__":
    sys.exit(main())
