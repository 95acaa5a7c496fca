"""Local processes for development, tests and benchmarks: chromadb, workers, the model server.

``livetutor dev-cluster`` uses them so that its pods share one vector store (never
one embedded store opened by several processes), have a worker for document jobs
and, with ``--llm local``, share one local model server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from devtools.cluster import free_port


class LocalProcessError(RuntimeError):
    """A local process did not start."""


def _executable(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise LocalProcessError(f"{name} is not installed (it comes with the project's packages)")
    return found


class ChromaServer:
    """``chroma run`` on 127.0.0.1 and a free port, its data under ``path``."""

    def __init__(self, path: Path, log_path: Path) -> None:
        self.path = path
        self.log_path = log_path
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> str:
        """Start it and wait for its heartbeat; returns its URL."""
        port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [_executable("chroma"), "run", "--path", str(self.path), "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://localhost:{port}"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    self.url = url
                    return url
            except httpx.HTTPError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LocalProcessError(f"chroma server did not start; see {self.log_path}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        _stop(self._proc, timeout_s)
        self._proc = None


class WorkerProcess:
    """``livetutor worker`` with the given environment (on top of this process's)."""

    def __init__(self, env: Mapping[str, str], log_path: Path, concurrency: int = 1) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.concurrency = concurrency
        self.metrics_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        """Start it and wait until it serves metrics; returns the metrics port."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LIVETUTOR_WORKER_METRICS_PORT": "0", **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [_executable("livetutor"), "worker", "--concurrency", str(self.concurrency)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "metrics on http://" not in line:
            self.stop()
            raise LocalProcessError(f"worker did not start; see {self.log_path}")
        self.metrics_port = int(line.rsplit(":", 1)[1].split("/")[0])
        return self.metrics_port

    def stop(self, timeout_s: float = 30.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL."""
        _stop(self.proc, timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ModelServerProcess:
    """``livetutor llm`` on 127.0.0.1 and a free port: the local model for several pods."""

    def __init__(self, log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.log_path = log_path
        self.env = dict(env or {})
        self.port = 0
        self.model = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Its OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def pod_env(self) -> dict[str, str]:
        """What a pod needs to answer with this model through the OpenAI-compatible provider."""
        return {
            "LIVETUTOR_LLM_PROVIDER": "openai",
            "OPENAI_BASE_URL": self.base_url,
            "LLM_MODEL": self.model,
        }

    def start(self, timeout_s: float = 120.0) -> str:
        """Start it and wait until the model answers; returns the base URL."""
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LIVETUTOR_LOCAL_LOAD_TIMEOUT_S": str(timeout_s), **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [_executable("livetutor"), "llm", "--port", str(self.port)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self.proc.stdout is not None
        # `livetutor llm` prints its first line once the model has loaded.
        line = self.proc.stdout.readline().decode()
        if " serves the OpenAI API at " not in line:
            self.stop()
            raise LocalProcessError(f"the model server did not start; see {self.log_path}")
        self.model = line.split(" serves ", 1)[0]
        return self.base_url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop it and its llama.cpp child (SIGTERM, then SIGKILL)."""
        _stop(self.proc, timeout_s)
        self.proc = None


def _stop(proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
