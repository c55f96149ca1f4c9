"""The interop app, run under one ASGI server in a subprocess by tests/test_interop.py.

    python tests/interop_app.py SERVER FD

SERVER is one of ``SERVERS``; FD is a listening TCP socket the test bound on
127.0.0.1 and passed down. The backend is the one the environment selects
(the test sets ``BOCADILLO_WS_NO_EXTENSIONS=1`` for the pure one); ``/info``
reports it, so the test checks it is the one it asked for.

Views are the public ``bocadillo_ws.websocket_view`` ones, as a user writes
them. Exceptions they raise reach the server (which logs them to this
process's output): how each server then behaves is part of what is tested.

Every connection carries a ``token`` query parameter. A middleware records
what the application did for it (the shape of every event it received, every
event it sent, notes written by views, how the call ended); ``/report`` sends
that record as JSON once the call has ended, since the test cannot see into
this process otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute

import bocadillo_ws
from bocadillo_ws import (
    OriginMiddleware,
    OriginPolicy,
    WebSocket,
    WebSocketDisconnect,
    refuse_cross_origin,
    websocket_view,
)

SERVERS = ("uvicorn-websockets", "uvicorn-websockets-sansio", "uvicorn-wsproto", "hypercorn", "daphne")
REPORT_TIMEOUT = 10.0

Scope = dict[str, Any]
Message = dict[str, Any]


# --------------------------------------------------------------------------- recording


@dataclass
class Session:
    received: list[Message] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    notes: list[Any] = field(default_factory=list)
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def as_json(self) -> dict[str, Any]:
        return {"received": self.received, "sent": self.sent, "notes": self.notes, "error": self.error}


SESSIONS: dict[str, Session] = {}


def shape(event: Message) -> Message:
    """The event, JSON-safe: payloads replaced by their type names (which shows ``None`` keys), bytes decoded."""
    if event["type"] in ("websocket.receive", "websocket.send", "websocket.http.response.body"):
        return {key: value if key == "type" else type(value).__name__ for key, value in event.items()}
    return {key: plain(value) for key, value in event.items()}


def plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def note(ws: WebSocket, value: Any) -> None:
    ws.scope["state"]["session"].notes.append(value)


# --------------------------------------------------------------------------- views


def record_disconnect(view: Any) -> Any:
    """Note the code and reason of the disconnect that ends ``view``, then let it propagate."""

    async def wrapper(ws: WebSocket) -> None:
        try:
            await view(ws)
        except WebSocketDisconnect as exc:
            note(ws, {"disconnect": [exc.code, exc.reason]})
            raise  # websocket_view silences it and sends nothing

    wrapper.__name__ = view.__name__
    return wrapper


async def echo(ws: WebSocket) -> None:  # receive() and send() follow value_type
    await ws.accept()
    async for message in ws:
        await ws.send(message)


@websocket_view(value_type="json")
async def info(ws: WebSocket) -> None:
    await ws.accept()
    core = next(cls for cls in type(ws).__mro__ if cls.__name__ == "WebSocketCore")
    await ws.send(
        {
            "backend": bocadillo_ws.BACKEND,
            "core": core.__module__,
            "server": SERVER,
            "python": platform.python_version(),
            "pid": os.getpid(),
        }
    )


@websocket_view(value_type="json")
async def subprotocol(ws: WebSocket) -> None:
    offered = list(ws.scope["subprotocols"])
    await ws.accept(subprotocol=ws.query_params.get("pick"))
    await ws.send(offered)
    await ws.receive_text()  # the client's word that it has read the reply


@websocket_view()
async def accept_headers(ws: WebSocket) -> None:
    await ws.accept(headers=[(b"x-interop", b"accepted"), (b"set-cookie", b"flavour=bocadillo")])
    await ws.send_text("accepted")
    await ws.receive_text()


@websocket_view()
async def server_close(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("closing")
    await ws.close(4001, "server bye ✓")


@websocket_view()
async def deny(ws: WebSocket) -> None:
    response = PlainTextResponse("denied ✗", status_code=401, headers={"x-denied": "yes"})
    try:
        await ws.send_denial_response(response)
    except RuntimeError as exc:
        # No ASGI websocket.http.response extension: the portable fallback is
        # a close before accept, which every server turns into an HTTP 403.
        note(ws, {"denial": "unsupported", "error": str(exc)})
        await ws.close(1008)
    else:
        note(ws, {"denial": "sent", "state": ws.application_state.name})


@websocket_view()
async def raises(ws: WebSocket) -> None:
    await ws.accept()
    await ws.receive_text()
    raise RuntimeError("boom after accept")


@websocket_view()
async def raises_before_accept(ws: WebSocket) -> None:
    raise RuntimeError("boom before accept")


async def raw_raise_before_accept(scope: Scope, receive: Any, send: Any) -> None:
    """A bare ASGI app (no bocadillo_ws): shows what the server itself does with an error."""
    assert (await receive())["type"] == "websocket.connect"
    raise RuntimeError("raw boom before accept")


async def raw_raise_after_accept(scope: Scope, receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "accepted"})
    raise RuntimeError("raw boom after accept")


# Origin checks, the three ways (same-origin, plus one listed origin).
FRIEND = "http://friend.example"


@websocket_view(same_origin=True, allowed_origins=[FRIEND])
async def origin_view(ws: WebSocket) -> None:
    note(ws, "view ran")
    await echo(ws)


async def origin_helper(websocket: Any) -> None:
    ws = WebSocket.from_starlette(websocket)
    if await refuse_cross_origin(ws, OriginPolicy([FRIEND], same_origin=True)):
        note(ws, "refused")
        return
    note(ws, "view ran")
    async with ws:  # accepts; a disconnect ends it quietly
        async for message in ws:
            await ws.send(message)


# Receive-side limits: 64 KiB per message (below every server's own cap), and
# 3 messages at once then one every 2 s (a flood trips it at once).
LIMIT = 64 * 1024


async def report(scope: Scope, receive: Any, send: Any) -> None:
    """Send the record of another connection (``?of=TOKEN``) once its application call has ended."""
    token = parse_qs(scope["query_string"].decode("latin-1"))["of"][0]
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    # The test asks only after the app has answered that connection, so its session exists.
    session = SESSIONS.get(token)
    if session is None:
        payload = '{"missing": true}'
    else:
        try:
            await asyncio.wait_for(session.done.wait(), REPORT_TIMEOUT)
            payload = json.dumps(session.as_json())
        except TimeoutError:
            payload = '{"unfinished": true}'
    await send({"type": "websocket.send", "text": payload})
    await send({"type": "websocket.close", "code": 1000})


ROUTES = [
    WebSocketRoute("/info", info),
    WebSocketRoute("/echo/text", websocket_view(value_type="text")(record_disconnect(echo))),
    WebSocketRoute("/echo/bytes", websocket_view(value_type="bytes")(record_disconnect(echo))),
    WebSocketRoute("/echo/json", websocket_view(value_type="json")(record_disconnect(echo))),
    WebSocketRoute("/subprotocol", subprotocol),
    WebSocketRoute("/accept-headers", accept_headers),
    WebSocketRoute("/server-close", server_close),
    WebSocketRoute("/deny", deny),
    WebSocketRoute("/raises", raises),
    WebSocketRoute("/raises-before-accept", raises_before_accept),
    WebSocketRoute("/limits/size/bytes", websocket_view(value_type="bytes", max_size=LIMIT)(record_disconnect(echo))),
    WebSocketRoute("/limits/size/text", websocket_view(value_type="text", max_size=LIMIT)(record_disconnect(echo))),
    WebSocketRoute("/limits/rate", websocket_view(max_rate=0.5, max_burst=3)(record_disconnect(echo))),
    WebSocketRoute("/origin/view", origin_view),
    WebSocketRoute("/origin/helper", origin_helper),
    WebSocketRoute("/origin/middleware", websocket_view()(echo)),
]
starlette_app = Starlette(routes=ROUTES)
RAW = {
    "/raw/raise-before-accept": raw_raise_before_accept,
    "/raw/raise-after-accept": raw_raise_after_accept,
    "/origin/middleware": OriginMiddleware(starlette_app, allowed_origins=[FRIEND], same_origin=True),
}


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """The recording middleware (Daphne calls it with keyword arguments: keep these names)."""
    if scope["type"] != "websocket":
        return await starlette_app(scope, receive, send)
    if scope["path"] == "/report":
        return await report(scope, receive, send)
    token = parse_qs(scope["query_string"].decode("latin-1")).get("token", [scope["path"]])[0]
    session = SESSIONS[token] = Session()
    scope.setdefault("state", {})["session"] = session

    async def recorded_receive() -> Message:
        event: Message = await receive()
        session.received.append(shape(event))
        return event

    async def recorded_send(message: Message) -> None:
        session.sent.append(shape(message))
        await send(message)

    try:
        await RAW.get(scope["path"], starlette_app)(scope, recorded_receive, recorded_send)
    except Exception as exc:
        session.error = f"{type(exc).__name__}: {exc}"
        raise  # the server's own handling is under test
    finally:
        session.done.set()


# --------------------------------------------------------------------------- servers


def run(server: str, fd: int) -> None:
    # fileno= detects the family and protocol: an AF_INET / IPPROTO_TCP
    # socket, so asyncio sets TCP_NODELAY on accepted connections.
    sock = socket.socket(fileno=fd)
    if server.startswith("uvicorn-"):
        import uvicorn

        # ws_ping_interval stays at uvicorn's default (20 s): the suite is short.
        config = uvicorn.Config(app, ws=server.removeprefix("uvicorn-"), lifespan="off", log_level="warning")
        uvicorn.Server(config).run(sockets=[sock])  # SIGTERM: graceful exit
    elif server == "hypercorn":
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.loglevel = "WARNING"
        asyncio.run(serve(app, config))  # type: ignore[arg-type]  # no shutdown_trigger: SIGTERM/SIGINT stop it
    elif server == "daphne":
        from daphne.server import Server  # first: it installs Twisted's asyncio reactor

        Server(app, endpoints=[f"fd:fileno={sock.detach()}"], verbosity=0).run()
    else:
        raise SystemExit(f"unknown server {server!r}; one of {SERVERS}")


if __name__ == "__main__":
    SERVER = sys.argv[1]
    run(SERVER, int(sys.argv[2]))
else:  # pragma: no cover - imported for inspection only
    SERVER = "imported"
