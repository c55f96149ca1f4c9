"""An in-memory ASGI transport and event builders for the four server shapes."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

SCOPE: dict[str, Any] = {
    "type": "websocket",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "scheme": "ws",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "root_path": "",
    "path": "/chat/lobby",
    "raw_path": b"/chat/lobby",
    "query_string": b"name=ana&room=lobby",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"cookie", b"session=abc; theme=dark"),
        (b"sec-websocket-protocol", b"chat, superchat"),
    ],
    "subprotocols": ["chat", "superchat"],
    "path_params": {"room": "lobby"},
    "extensions": {"websocket.http.response": {}},
}

# How servers shape a frame's event: uvicorn sends only the key that is used,
# Hypercorn sends both with the unused one None.
SHAPES = ["uvicorn", "hypercorn"]


def connect() -> dict[str, Any]:
    return {"type": "websocket.connect"}


def text(payload: str, shape: str = "uvicorn") -> dict[str, Any]:
    event: dict[str, Any] = {"type": "websocket.receive", "text": payload}
    if shape == "hypercorn":
        event["bytes"] = None
    return event


def binary(payload: bytes, shape: str = "uvicorn") -> dict[str, Any]:
    event: dict[str, Any] = {"type": "websocket.receive", "bytes": payload}
    if shape == "hypercorn":
        event["text"] = None
    return event


def disconnect(code: int = 1000, reason: str = "") -> dict[str, Any]:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


class Transport:
    """Feeds prepared receive events and records what the application sends."""

    def __init__(self, *events: dict[str, Any], send_error: BaseException | None = None) -> None:
        self.inbox = list(events)
        self.sent: list[dict[str, Any]] = []
        self.send_error = send_error

    async def receive(self) -> dict[str, Any]:
        if not self.inbox:
            raise AssertionError("the test transport has no more events to receive")
        return self.inbox.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(message)

    @property
    def frames(self) -> list[dict[str, Any]]:
        """The ``websocket.send`` events sent, in order."""
        return [m for m in self.sent if m["type"] == "websocket.send"]

    @property
    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


def open_socket(WebSocket: type[Any], *events: dict[str, Any], **options: Any) -> tuple[Any, Transport]:
    """A WebSocket on a Transport that will deliver ``connect`` then ``events``."""
    transport = Transport(connect(), *events)
    return WebSocket(dict(SCOPE), transport.receive, transport.send, **options), transport


def drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (the in-memory transport) to its end."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise AssertionError("the coroutine suspended on an in-memory transport")
