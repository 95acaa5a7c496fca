"""The container health check: ``python -m server.healthcheck``.

One image runs ``livetutor serve``, ``livetutor worker`` or ``livetutor beat``;
the Dockerfile's ``HEALTHCHECK`` runs this module, which reads the role from
the command line of the container's main process (PID 1) and checks it:

- ``serve``: ``GET /health/live`` on ``LIVETUTOR_PORT`` answers 200. Liveness,
  not readiness: a draining pod is healthy, it is only not taking new work;
- ``worker``: ``GET /metrics`` on ``LIVETUTOR_WORKER_METRICS_PORT`` answers 200;
- ``llm``: ``GET /docs`` on the model server's ``--port`` (8090 by default)
  answers 200: llama.cpp's server listens only once the model has loaded, and
  ``/docs`` answers at once even while an answer is being decoded;
- ``beat`` or anything else: healthy while the main process runs (it has no port).

Exit status 0 means healthy and 1 unhealthy, as Docker expects.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.errors import LiveTutorError
from core.settings import KnowledgeSettings, Settings

LIVE_PATH = "/health/live"
WORKER_METRICS_PATH = "/metrics"
WORKER_METRICS_PORT = KnowledgeSettings().worker_metrics_port
TIMEOUT_S = 3.0
LLM_PATH = "/docs"
LLM_PORT = 8090
ROLES = ("serve", "worker", "beat", "llm")


def role(cmdline: Sequence[str]) -> str:
    """The ``livetutor`` sub-command in a process's arguments, or ``""``."""
    for i, arg in enumerate(cmdline[:-1]):
        if Path(arg).name == "livetutor" and cmdline[i + 1] in ROLES:
            return cmdline[i + 1]
    return ""


def probe_url(role_name: str, env: Mapping[str, str], cmdline: Sequence[str] = ()) -> str | None:
    """The URL that must answer 200 for ``role_name``; None when there is none to ask."""
    if role_name == "llm":
        args = list(cmdline)
        port = int(args[args.index("--port") + 1]) if "--port" in args[:-1] else LLM_PORT
        return f"http://127.0.0.1:{port}{LLM_PATH}"
    if role_name == "serve":
        port = Settings.from_env(env).port
        return f"http://127.0.0.1:{port}{LIVE_PATH}"
    if role_name == "worker":
        port = Settings.from_env(env).knowledge.worker_metrics_port
        return f"http://127.0.0.1:{port}{WORKER_METRICS_PATH}"
    return None


def answers_ok(url: str, timeout_s: float = TIMEOUT_S) -> bool:
    """True when ``GET url`` answers 200 within ``timeout_s``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main_process_cmdline(proc: Path = Path("/proc")) -> list[str]:
    """Arguments of the container's main process (PID 1).

    Under an init (``docker run --init``, compose ``init: true``) PID 1 is
    ``docker-init -- livetutor serve``, whose arguments still name the role.
    """
    raw = (proc / "1" / "cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def main(argv: Sequence[str] | None = None) -> int:
    """Check the container's main process; 0 healthy, 1 unhealthy."""
    try:
        cmdline = list(argv) if argv else main_process_cmdline()
    except OSError:
        cmdline = []
    name = role(cmdline)
    try:
        url = probe_url(name, os.environ, cmdline)
    except (LiveTutorError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if url is None:
        return 0
    if answers_ok(url):
        return 0
    print(f"unhealthy: {name}: GET {url} did not answer 200", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
