"""Cross-Site WebSocket Hijacking in a real browser: another site's page cannot open the demo's socket.

A second HTTP server on another port (another origin) serves a page whose
script opens ``ws://127.0.0.1:<demo>/ws/lobby``. Chromium sends that page's
``Origin``; the demo refuses the handshake with a 403, so the socket never
opens. The same script run on the demo's own page opens the socket (the URL
is right; only the origin differs). The demo's own chat is
test_chat_browser.py. Once per backend (test ids ``c`` and ``py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.support.wait import WebDriverWait

from conftest import ChatServer

TIMEOUT = 10.0

# Opens the socket and records what happens, for the test to read.
OPEN_SOCKET = """
window.events = [];
const ws = new WebSocket(arguments[0]);
ws.onopen = () => { window.events.push("open"); ws.close(1000); };
ws.onerror = () => window.events.push("error");
ws.onclose = (event) => window.events.push("close " + event.code);
"""

ATTACKER_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>another site</title></head>
<body><p>An unrelated site that a logged-in chat user visits.</p></body></html>
"""


class AttackerPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(ATTACKER_PAGE)))
        self.end_headers()
        self.wfile.write(ATTACKER_PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reports what matters


@pytest.fixture
def other_origin() -> Iterator[str]:
    """``http://127.0.0.1:<another port>/``: another origin than the demo's (the port differs)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), AttackerPage)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def socket_events(driver: Chrome, url: str) -> list[str]:
    """Open ``url`` from the current page; the page's events once the socket has opened or closed."""
    driver.execute_script(OPEN_SOCKET, url)
    WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(
        lambda d: any(event.startswith("close") for event in d.execute_script("return window.events"))
    )
    events: list[str] = driver.execute_script("return window.events")
    return events


def test_another_origin_cannot_open_the_demos_socket(
    open_browser: Callable[[str], Chrome], chat_server: ChatServer, other_origin: str
) -> None:
    socket_url = chat_server.url.replace("http://", "ws://") + "ws/lobby?name=mallory"
    driver = open_browser("visitor")

    driver.get(other_origin)
    assert driver.title == "another site"
    assert socket_events(driver, socket_url) == ["error", "close 1006"]  # never "open"
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert any("403" in error for error in errors), errors  # Chromium reports the handshake's status

    # The same script on the demo's own page: the socket opens.
    driver.get(chat_server.url)
    assert driver.title == "bocadillo_ws chat"
    assert socket_events(driver, socket_url) == ["open", "close 1000"]
