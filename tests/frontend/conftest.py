"""The chat UI in a real browser: Debian's Chromium driven by Playwright, against
``livetutor serve`` on embedded defaults in its own process (port 0).

One built bundle (``frontend/dist``, built by ``scripts/ui.sh``) and one browser
serve every test here; each test gets a fresh browser context (no shared storage).
Screenshots go to ``artifacts/screenshots/`` for people to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.settings import env_names

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "frontend" / "dist"
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# Slow enough to reload or drop the connection mid-answer; an answer takes a few seconds.
PACE_MS = "30"
START_TIMEOUT_S = 30


@dataclass
class LiveServer:
    """``livetutor serve`` in a subprocess."""

    url: str
    data_dir: Path

    def get(self, path: str, token: str) -> Any:
        """GET a JSON route with the token."""
        request = urllib.request.Request(
            self.url + path, headers={"authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/test.sh does)")
    return path


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for every UI test.

    Package scope: Playwright's sync API keeps an event loop running in this thread
    while it is started, so it must stop before the asyncio tests of other packages.
    """
    if not (DIST / "index.html").is_file():
        pytest.fail(f"the chat UI is not built ({DIST}): run `make ui` (make test builds it)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


class ServerProcess:
    """``livetutor serve`` on embedded defaults in its own process."""

    def __init__(self, data_dir: Path, port: int = 0, **env: str) -> None:
        self.data_dir = data_dir
        clean = {k: v for k, v in os.environ.items() if k not in env_names()}
        clean |= {
            "LIVETUTOR_DATA_DIR": str(data_dir),
            "LIVETUTOR_LLM_OFFLINE_PACE_MS": PACE_MS,
            "LIVETUTOR_LOG_LEVEL": "warning",
            "LIVETUTOR_DRAIN_S": "1",
            "LIVETUTOR_METRICS_PORT": "0",
            **env,
        }
        self._log = (data_dir / "server.log").open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=clean,
            cwd=REPO,
        )
        timer = threading.Timer(START_TIMEOUT_S, self.proc.kill)
        timer.start()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        timer.cancel()
        if "listening on" not in line:
            self.stop()
            pytest.fail(f"server did not start: {(data_dir / 'server.log').read_text()[-2000:]}")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def terminate(self) -> None:
        """SIGTERM: the server drains, then exits."""
        self.proc.terminate()

    def stop(self) -> None:
        """Terminate and wait for the exit."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The server on embedded defaults, with the offline tutor paced like a model."""
    server = ServerProcess(tmp_path_factory.mktemp("ui-server"))
    try:
        yield LiveServer(server.url, server.data_dir)
    finally:
        server.stop()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Pages in fresh browser contexts, closed after the test; page errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(context: Any = None, **options: Any) -> Any:
        if context is None:
            context = browser.new_context(**options)
            contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors


def shot(page: Any, name: str) -> None:
    """Save a screenshot for people to look at."""
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def sign_in(
    page: Any, live: LiveServer, user: str, role: str = "learner", courses: str = ""
) -> None:
    """Sign in through the page's development sign-in and wait for the connection.

    ``courses`` (course ids separated by spaces or commas) replaces the form's ``demo``.
    """
    page.goto(live.url + "/")
    page.get_by_label("Your name").fill(user)
    if role != "learner":
        page.get_by_label("Role").select_option(role)
    if courses:
        page.get_by_label("Courses").fill(courses)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator("[data-testid=connection-state][data-state=connected]").wait_for()


def token_of(page: Any) -> str:
    """The token the page signed in with."""
    token: str = page.evaluate("localStorage.getItem('livetutor.token')")
    return token
