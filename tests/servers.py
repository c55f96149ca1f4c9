"""Real servers for tests: uvicorn on 127.0.0.1, a random port, in a thread."""

from __future__ import annotations

import contextlib
import inspect
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

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

    The socket is bound here (port 0), so the port is known before the server
    starts and no two tests race for one. The server stops when the block
    ends, bounded by STOP_TIMEOUT.
    """
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when
    # their proto says TCP; without it, small frames wait on delayed ACKs (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
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
