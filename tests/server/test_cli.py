"""The livetutor command as a user runs it: real processes, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from realtime.client import TutorClient
from server.serve import GC_THRESHOLDS

LIVETUTOR = [sys.executable, "-m", "server.cli"]


def run_cli(*args: str, data_dir: Path, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LIVETUTOR, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "LIVETUTOR_DATA_DIR": str(data_dir)},
    )


class ServeProcess:
    def __init__(self, proc: asyncio.subprocess.Process, url: str, data_dir: Path) -> None:
        self.proc = proc
        self.url = url
        self.data_dir = data_dir

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def token(self, user: str = "alice") -> str:
        return run_cli("token", "--user", user, data_dir=self.data_dir).stdout.strip()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    """``livetutor serve --port 0`` in its own process, paced like a real model."""
    env = {
        **os.environ,
        "LIVETUTOR_LLM_OFFLINE_PACE_MS": "5",
        "LIVETUTOR_DRAIN_S": "10",
        "LIVETUTOR_LOG_LEVEL": "warning",
        "LIVETUTOR_METRICS_PORT": "0",
    }
    proc = await asyncio.create_subprocess_exec(
        *LIVETUTOR,
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert line.startswith("LiveTutor listening on http://127.0.0.1:"), line
    try:
        yield ServeProcess(proc, line.split()[-1], tmp_path / "data")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_token_prints_only_a_token(tmp_path: Path) -> None:
    """token prints one JWT on stdout, signed with the data dir's secret, for course demo."""
    result = run_cli("token", "--user", "alice", data_dir=tmp_path)
    secret_file = tmp_path / "jwt_secret"
    claims = jwt.decode(
        result.stdout.strip(),
        secret_file.read_text().strip(),
        algorithms=["HS256"],
        issuer="livetutor",
    )
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1
    assert (claims["sub"], claims["role"], claims["courses"]) == ("alice", "learner", ["demo"])
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_token_with_role_courses_and_expiry(tmp_path: Path) -> None:
    """--role, repeated --course and --expires-s end up in the claims."""
    result = run_cli(
        "token",
        "--user",
        "ines",
        "--role",
        "instructor",
        "--course",
        "bio101",
        "--course",
        "chem",
        "--expires-s",
        "120",
        data_dir=tmp_path,
    )
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["role"] == "instructor"
    assert claims["courses"] == ["bio101", "chem"]
    assert claims["exp"] - claims["iat"] == 120


def test_token_refuses_bad_user(tmp_path: Path) -> None:
    """An invalid user id is a clear error, not a traceback."""
    result = run_cli("token", "--user", "a b", data_dir=tmp_path)
    assert result.returncode == 2
    assert "user id" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    """A setting that cannot be used stops the command with its name."""
    result = subprocess.run(
        [*LIVETUTOR, "token", "--user", "alice"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LIVETUTOR_DATA_DIR": str(tmp_path), "LIVETUTOR_MAX_FRAME_BYTES": "10"},
    )
    assert result.returncode == 2
    assert "LIVETUTOR_MAX_FRAME_BYTES" in result.stderr


async def test_ask_streams_an_answer(serve: ServeProcess) -> None:
    """livetutor ask prints the answer and its sources, and exits 0."""
    proc = await asyncio.create_subprocess_exec(
        *LIVETUTOR,
        "ask",
        "--url",
        serve.ws_url,
        "--token",
        serve.token(),
        "What makes an argument valid?",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "Deductive validity" in text
    assert "p. 2" in text
    assert "stop, model offline" in text


async def test_ask_with_bad_token_fails_clearly(serve: ServeProcess) -> None:
    """A refused token makes ask exit 1 with a message."""
    proc = await asyncio.create_subprocess_exec(
        *LIVETUTOR,
        "ask",
        "--url",
        serve.ws_url,
        "--token",
        "forged",
        "hello",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "refused" in err.decode()


async def test_sigterm_drains_then_exits(serve: ServeProcess) -> None:
    """SIGTERM: clients get reconnect, the running answer completes, then 1012 and exit."""
    client = await TutorClient.connect(serve.ws_url, serve.token())
    ask = await client.ask("Explain correlation and causation")
    await client.wait_for(lambda f: f["type"] == "delta")
    serve.proc.send_signal(signal.SIGTERM)
    notice = await client.wait_for(lambda f: f["type"] == "reconnect")
    answer = await client.answer(ask, after=1)
    with pytest.raises(ConnectionClosed) as info:
        await client.recv(15)
    code = await asyncio.wait_for(serve.proc.wait(), 30)
    assert notice["after_ms"] == 10_000
    assert answer.reason == "stop"
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012
    # uvicorn re-raises the signal once shut down, so the exit status names it.
    assert code == -signal.SIGTERM


async def test_logs_never_contain_the_token(tmp_path: Path) -> None:
    """The server's log lines (JSON on stderr) carry events but never the token."""
    data_dir = tmp_path / "data"
    token = run_cli("token", "--user", "alice", data_dir=data_dir).stdout.strip()
    proc = await asyncio.create_subprocess_exec(
        *LIVETUTOR,
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LIVETUTOR_LLM_OFFLINE_PACE_MS": "0", "LIVETUTOR_METRICS_PORT": "0"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()[-1]
    async with await TutorClient.connect(url.replace("http", "ws") + "/ws", token) as client:
        answer = await client.answer(await client.ask("What is a fallacy?"))
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    logs = err.decode()
    assert answer.reason == "stop"
    assert '"event": "ws.accepted"' in logs
    assert '"event": "stream.ended"' in logs
    assert token not in logs
    assert token.split(".")[2] not in logs
    assert "What is a fallacy" not in logs


async def test_serve_prints_its_metrics_address(serve: ServeProcess) -> None:
    """With LIVETUTOR_METRICS_PORT=0, serve prints the free port it took for /metrics."""
    assert serve.proc.stdout is not None
    line = (await asyncio.wait_for(serve.proc.stdout.readline(), 30)).decode()
    assert line.startswith("LiveTutor metrics on http://127.0.0.1:"), line
    async with httpx.AsyncClient() as http:
        metrics = await http.get(line.split()[-1])
        main = await http.get(f"{serve.url}/metrics")
    assert metrics.status_code == 200
    assert "websocket_active_connections" in metrics.text
    assert main.status_code == 404


async def run_ask(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``livetutor ask`` in its own process: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *LIVETUTOR,
        "ask",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_ask_takes_the_address_serve_prints(serve: ServeProcess) -> None:
    """The http://host:port address that serve prints works as --url, and from LIVETUTOR_URL."""
    token = serve.token()
    code, out, err = await run_ask("--url", serve.url, "--token", token, "What is a premise?")
    assert code == 0, err
    assert "model offline" in out
    code, out, err = await run_ask(
        "--token", token, "What is a premise?", env={"LIVETUTOR_URL": serve.url + "/"}
    )
    assert code == 0, err
    assert "model offline" in out


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:8000",
        "ftp://127.0.0.1:8000",
        "http://",
        "http://127.0.0.1:8000/api",
        "http://127.0.0.1:99999",
        "http://u:pw@127.0.0.1:8000",
        "ws://127.0.0.1:8000/ws?token=x",
    ],
)
async def test_ask_refuses_a_bad_address_in_one_line(url: str) -> None:
    """A malformed address is one line on stderr and exit code 2, never a traceback."""
    code, out, err = await run_ask("--url", url, "--token", "secret-token-value", "hello")
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "secret-token-value" not in err


async def test_ask_to_a_closed_port_says_so_in_one_line() -> None:
    """A refused connection is one line naming the address, exit code 1, no token shown."""
    from devtools.cluster import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await run_ask("--url", url, "--token", "secret-token-value", "hello")
    assert code == 1
    assert err.startswith("livetutor ask: cannot reach ws://127.0.0.1:"), err
    assert len(err.strip().splitlines()) == 1, err
    assert "secret-token-value" not in err


async def test_a_refused_token_is_one_line_without_the_token(serve: ServeProcess) -> None:
    """A 403 at the handshake is one line with the status and the server's reason, not the token."""
    forged = serve.token() + "x"
    code, _, err = await run_ask("--url", serve.url, "--token", forged, "hello")
    assert code == 1
    assert "HTTP 403" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert forged not in err and forged[-20:] not in err


def test_token_written_to_a_file_is_private(tmp_path: Path) -> None:
    """token --out writes the token to a 0600 file and prints nothing."""
    out = tmp_path / "alice.token"
    done = run_cli("token", "--user", "alice", "--out", str(out), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    claims = jwt.decode(out.read_text().strip(), options={"verify_signature": False})
    assert claims["sub"] == "alice"


def test_health_check_of_the_model_server_asks_its_port() -> None:
    """The image's health check knows `livetutor llm` and asks /docs on its --port."""
    from server.healthcheck import probe_url, role

    cmdline = ["/opt/venv/bin/livetutor", "llm", "--host", "0.0.0.0", "--port", "8091"]
    assert role(cmdline) == "llm"
    assert probe_url("llm", {}, cmdline) == "http://127.0.0.1:8091/docs"
    assert probe_url("llm", {}, ["livetutor", "llm"]) == "http://127.0.0.1:8090/docs"


async def test_serve_runs_on_uvloop_with_its_start_up_heap_frozen(tmp_path: Path) -> None:
    """serve runs on uvloop (loop="auto"), its start-up objects out of the collector's way,
    and collects garbage at thresholds an answer's short-lived objects seldom reach."""
    env = {**os.environ, "LIVETUTOR_LOG_LEVEL": "info", "LIVETUTOR_LOG_JSON": "true"}
    proc = await asyncio.create_subprocess_exec(
        *LIVETUTOR,
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    lines: dict[str, dict[str, object]] = {}
    try:
        while "serve.heap_frozen" not in lines:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, f"serve exited before it started: {lines}"
            if line.startswith("{"):
                record = json.loads(line)
                lines[str(record["event"])] = record
    finally:
        proc.kill()
        await proc.wait()
    assert lines["runtime.started"]["loop"] == "uvloop", lines["runtime.started"]
    # Modules, settings, embedders and the runtime: tens of thousands of objects.
    frozen = lines["serve.heap_frozen"]["objects"]
    assert isinstance(frozen, int) and frozen > 10_000, frozen
    assert lines["serve.heap_frozen"]["gc_thresholds"] == list(GC_THRESHOLDS) != [700, 10, 10]
