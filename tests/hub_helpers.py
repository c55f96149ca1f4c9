"""Members for Hub tests: a backend's WebSocket on ``Peer``, an in-memory ASGI server side."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from asgi_helpers import SCOPE
from bocadillo_ws import Hub
from redis_server import free_port

DEMO = Path(__file__).resolve().parents[1] / "demo" / "chat.py"


def load_demo() -> ModuleType:
    """``demo/chat.py`` as a module, once per process (``sys.modules["bocadillo_ws_chat_demo"]``).

    By path: demo/ is not a package, and importing it must not put the
    repository root (and its uncompiled bocadillo_ws/) on sys.path.
    """
    name = "bocadillo_ws_chat_demo"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Peer:
    """The server side of one member: records what is sent; ``hold()`` pauses frames, ``fail`` breaks sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.fail: BaseException | None = None
        self.cancelled = 0
        self.on_send: Any = None
        self._inbox: list[dict[str, Any]] = [{"type": "websocket.connect"}]
        self._closed = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self._inbox:
            return self._inbox.pop(0)
        await self._closed.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(self, event: dict[str, Any]) -> None:
        if self.on_send is not None:
            self.on_send(event)
        if self.fail is not None:
            raise self.fail
        if event.get("text") is not None:
            event["text"].encode()  # as a real server frames it: a lone surrogate is a UnicodeEncodeError
        if event["type"] == "websocket.send" and self.gate is not None:
            try:
                await self.gate.wait()  # a paused transport: the frame waits
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        self.sent.append(event)
        if event["type"] == "websocket.close":
            self._closed.set()

    def hold(self) -> None:
        self.gate = asyncio.Event()

    def release(self) -> None:
        assert self.gate is not None
        self.gate.set()
        self.gate = None

    @property
    def frames(self) -> list[Any]:
        return [e.get("text", e.get("bytes")) for e in self.sent if e["type"] == "websocket.send"]

    @property
    def texts(self) -> list[Any]:
        return [json.loads(t) for t in self.frames]


def backend_hub(impl: Any) -> type[Hub]:
    """``Hub`` with ``impl``'s fan_out (the live backend's otherwise): hub tests run on both backends."""
    return type("BackendHub", (Hub,), {"_fan_out": staticmethod(impl.module.fan_out)})


async def member(WebSocket: type[Any]) -> tuple[Any, Peer]:
    peer = Peer()
    ws = WebSocket(dict(SCOPE), peer.receive, peer.send)
    await ws.accept()
    peer.sent.clear()
    return ws, peer


async def settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


@contextlib.contextmanager
def demo_process(redis_url: str, *options: str) -> Iterator[str]:
    """``python demo/chat.py --port P --redis URL [options]``; yields ``ws://127.0.0.1:P``; stopped by PID."""
    port = free_port()
    argv = [sys.executable, str(DEMO), "--port", str(port), "--redis", redis_url, *options]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"demo exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("demo did not start") from None
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
