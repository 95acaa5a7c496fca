"""A TCP server on 127.0.0.1 port 0 that sends an HTTP response a byte at a time (slowloris)."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class TrickleServer:
    port: int

    def url(self, path: str = "/guide.pdf", host: str = "localhost") -> str:
        return f"http://{host}:{self.port}{path}"


@contextmanager
def trickle_server(
    response: bytes, *, at_once: int = 0, pause_s: float = 0.2, give_up_s: float = 20.0
) -> Iterator[TrickleServer]:
    """Answer every request with ``response``: ``at_once`` bytes, then one every ``pause_s``.

    A connection is closed after ``give_up_s`` (or when the block ends), so a
    client that never stops reading still returns eventually.
    """
    stop = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65_536)
            ends = time.monotonic() + give_up_s
            try:
                self.request.sendall(response[:at_once])
                for i in range(at_once, len(response)):
                    if stop.wait(pause_s) or time.monotonic() > ends:
                        return
                    self.request.sendall(response[i : i + 1])
            except OSError:
                return

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TrickleServer(server.server_address[1])
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
