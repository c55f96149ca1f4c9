"""Fixtures for the browser tests: the demo server, per backend, and headless Chromium.

The server is ``python demo/chat.py`` in a subprocess, run exactly as the
README says, once per backend (``BOCADILLO_WS_NO_EXTENSIONS=1`` for the pure
one); it prints the backend it really runs, and the fixture checks it.

Chromium and its driver are Debian's (``/usr/bin/chromium``,
``/usr/bin/chromedriver``), passed by path so Selenium Manager never
downloads anything. Missing, they are a test failure, never a skip.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium.webdriver import Chrome, ChromeOptions
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "chat.py"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # gitignored

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 3

# Test id -> (the BACKEND the server must report, the environment that selects it).
BACKENDS: dict[str, tuple[str, dict[str, str]]] = {
    "c": ("cython", {}),
    "py": ("python", {"BOCADILLO_WS_NO_EXTENSIONS": "1"}),
}

# Flags that work as root on a closed network: without the background
# networking ones, Chromium's own outbound connections fail and clutter runs.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Shared memory in /tmp, not /dev/shm: a container's 64 MB /dev/shm crashes
    # pages, and Debian's launcher fails to check its size when findmnt prints two lines.
    "--disable-dev-shm-usage",
    "--no-proxy-server",  # the page is on 127.0.0.1: never through an environment proxy
    "--window-size=760,780",
]


@pytest.fixture(scope="session", autouse=True)
def no_proxy_for_loopback() -> Iterator[None]:
    # Selenium talks to chromedriver over HTTP on localhost and honours
    # HTTP_PROXY unless NO_PROXY exempts it.
    with pytest.MonkeyPatch.context() as patch:
        for var in ("NO_PROXY", "no_proxy"):
            patch.setenv(var, ",".join(filter(None, [os.environ.get(var), "127.0.0.1", "localhost"])))
        yield


@pytest.fixture(scope="session")
def chromium() -> tuple[Path, Path]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: the browser tests need Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver)",
            pytrace=False,
        )
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def open_browser(chromium: tuple[Path, Path], tmp_path: Path) -> Iterator[Callable[[str], Chrome]]:
    """``open_browser(user)``: a new headless Chromium with its own empty profile (one user)."""
    browser, driver_path = chromium
    drivers: list[Chrome] = []

    def open_one(user: str) -> Chrome:
        options = ChromeOptions()
        options.binary_location = str(browser)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        profile = tmp_path / f"profile-{user}"
        profile.mkdir()
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for checks
        driver = Chrome(service=Service(executable_path=str(driver_path)), options=options)
        drivers.append(driver)
        driver.set_page_load_timeout(START_TIMEOUT)
        driver.set_script_timeout(START_TIMEOUT)
        return driver

    try:
        yield open_one
    finally:
        for driver in drivers:
            driver.quit()  # idempotent: a test may have quit one already


@dataclass
class ChatServer:
    url: str
    backend: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output)


def free_port() -> int:
    # The demo binds the port itself, so it can only be picked, not held:
    # a lost race is "address already in use", and start_server retries.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def drain(server: ChatServer) -> None:
    # In a thread: the pipe must keep draining while the server runs.
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.output.append(line)


def wait_until_listening(server: ChatServer) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.process.poll() is None:
        if "Uvicorn running on" in server.log():
            return True
        time.sleep(0.05)
    return False


def start_server(env: dict[str, str]) -> ChatServer:
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, str(DEMO), "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        server = ChatServer(url=f"http://127.0.0.1:{port}/", backend="", process=process)
        threading.Thread(target=drain, args=(server,), daemon=True).start()
        if wait_until_listening(server):
            found = re.search(r"backend: (\w+)", server.log())
            server.backend = found.group(1) if found else "?"
            return server
        stop_server(server)
        if "address already in use" not in server.log():
            raise RuntimeError(f"the demo server did not start:\n{server.log()}")
    raise RuntimeError(f"no free port after {PORT_ATTEMPTS} attempts:\n{server.log()}")


def stop_server(server: ChatServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
        server.process.kill()
        server.process.wait(STOP_TIMEOUT)
        raise RuntimeError(f"the demo server ignored SIGTERM:\n{server.log()}") from None


@pytest.fixture(params=sorted(BACKENDS))
def chat_server(request: pytest.FixtureRequest) -> Iterator[ChatServer]:
    """``python demo/chat.py`` on 127.0.0.1, on the backend the test id names."""
    expected, extra_env = BACKENDS[request.param]
    env = {key: value for key, value in os.environ.items() if key != "BOCADILLO_WS_NO_EXTENSIONS"}
    env.update(extra_env, PYTHONUNBUFFERED="1")
    server = start_server(env)
    try:
        # The process says which backend it imported: the leg is real only if it is the expected one.
        assert server.backend == expected, f"wanted the {expected} backend, the server ran:\n{server.log()}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(server.url, timeout=START_TIMEOUT) as response:
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/html")
        yield server
    finally:
        stop_server(server)
        # The server's log goes into the report of a failed test.
        print(f"--- demo server output ({request.param}) ---\n{server.log()}")
