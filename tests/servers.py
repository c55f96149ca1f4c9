"""Real servers for tests on 127.0.0.1, a random port: uvicorn in a thread
(``serve``), or any server of tests/interop_app.py in a subprocess
(``serve_process``)."""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import uvicorn
from websockets.asyncio.client import connect

# Keyword arguments for websockets' connect(): never route loopback through
# an environment proxy (websockets >= 15 honours them by default; older
# releases have no ``proxy`` argument).
NO_PROXY: dict[str, Any] = {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@contextlib.contextmanager
def serve(app: Any, *, ws: str = "websockets-sansio") -> Iterator[str]:
    """Run ``app`` under uvicorn and yield its ``ws://127.0.0.1:PORT`` base URL.

    The socket is bound and listening here (port 0), so the port is known before the server
    starts and no two tests race for one. The server stops when the block
    ends, bounded by STOP_TIMEOUT.
    """
    sock = listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, ws=ws, lifespan="off", log_level="warning", ws_ping_interval=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        sock.close()
        if thread.is_alive():  # pragma: no cover - a hung server is a test failure
            raise RuntimeError("uvicorn did not stop")


INTEROP_APP = Path(__file__).with_name("interop_app.py")


def listening_socket() -> socket.socket:
    """A TCP socket listening on 127.0.0.1, port chosen by the kernel."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when
    # their proto says TCP; without it, small frames wait on delayed ACKs (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextlib.contextmanager
def serve_process(server: str, *, pure: bool, log: IO[bytes]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run tests/interop_app.py under ``server`` in a subprocess; yield its base URL and the process.

    The test binds and listens, and the child inherits the socket: the port is
    known up front, and connections made while the child is still starting
    wait in the kernel's backlog. ``pure`` picks the backend the way a user
    does (``BOCADILLO_WS_NO_EXTENSIONS``). Output goes to ``log``. Readiness is
    the caller's to check (a first connection, with a timeout). The child is
    stopped with SIGTERM, bounded by STOP_TIMEOUT.
    """
    sock = listening_socket()
    port = sock.getsockname()[1]
    env = dict(os.environ)
    env.pop("BOCADILLO_WS_NO_EXTENSIONS", None)
    if pure:
        env["BOCADILLO_WS_NO_EXTENSIONS"] = "1"
    # By path, not -m: sys.path[0] is tests/, so the installed bocadillo_ws is
    # imported, never the source tree's.
    argv = [sys.executable, str(INTEROP_APP), server, str(sock.fileno())]
    process = subprocess.Popen(argv, pass_fds=[sock.fileno()], env=env, stdout=log, stderr=subprocess.STDOUT)
    sock.close()  # the child's copy is the only one: if it dies, connections are refused at once
    try:
        yield f"ws://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server is a test failure
            process.kill()
            process.wait(STOP_TIMEOUT)
            raise RuntimeError(f"{server} did not stop on SIGTERM") from None
