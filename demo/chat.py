"""A small multi-room chat on Starlette and bocadillo_ws.

Run it, from the repository root, with bocadillo_ws installed::

    python demo/chat.py [--host 127.0.0.1] [--port 8000] [--allow-origin ORIGIN ...] [--max-rate N]

Run it by path, not with ``python -m``: ``-m`` puts the repository root on
``sys.path``, and the source tree's ``bocadillo_ws/`` (without the compiled
extension) would shadow the installed package.

``GET /`` serves the page (``index.html``, next to this file). The page opens
a WebSocket to ``/ws/{room}?name={name}``.

Protocol (JSON text frames; binary frames holding UTF-8 JSON work too):

- client → server: ``{"text": "..."}``, where ``text`` is a string of at
  most 2000 characters. Other keys are ignored.
- server → client, to everyone in the room, the sender included:

  - ``{"type": "message", "room": ..., "name": ..., "text": ..., "ts": <float>}``
    (``ts`` is the server's Unix time when the message arrived),
  - ``{"type": "join", "room": ..., "name": ...}`` when someone arrives
    (the newcomer gets their own notice: it means "you are in"),
  - ``{"type": "leave", "room": ..., "name": ...}`` when someone goes.

The ``name`` query parameter is optional (``anonymous`` by default), at most
32 characters once stripped of surrounding spaces; a room name is at most
64 characters.

Origins: a handshake from another site's page is refused with HTTP 403
(Cross-Site WebSocket Hijacking; docs/security.md). The demo's own page
(same origin) is accepted, and so are the origins given with
``--allow-origin`` (repeatable; ``https://*.example.com`` for subdomains)
and handshakes without ``Origin`` (non-browser clients).

Close codes the server uses:

- ``1000``: normal closure (server shutting down the connection cleanly).
- ``1007``: the frame is not valid JSON, or a binary frame is not valid UTF-8
  (``bocadillo_ws.InvalidJSON``).
- ``1008``: policy violation (``PolicyViolation`` below): the JSON is not an
  object with a string ``"text"`` of at most 2000 characters, or the name or
  room name is too long; or, with ``--max-rate N``, the client sent more than
  N messages per second (``bocadillo_ws.RateLimited``; off by default, so
  load tests and benchmarks are unaffected).
- ``1009``: a message over 64 KiB (``bocadillo_ws.MessageTooBig``).
- ``1011``: an unexpected server error.

A bad message ends only the connection that sent it; the others in the room
see that client's ``leave`` notice.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute

import bocadillo_ws
from bocadillo_ws import MessageError, WebSocket, WebSocketDisconnect, websocket_view

MAX_TEXT = 2000
MAX_NAME = 32
MAX_ROOM = 64
MAX_MESSAGE = 64 * 1024  # bytes per frame: far above a 2000-character message, far below every server's cap
DEFAULT_NAME = "anonymous"
PAGE = Path(__file__).with_name("index.html")

logger = logging.getLogger("chat")

Event = dict[str, Any]


class PolicyViolation(MessageError):
    """The client sent something the chat refuses: closes with 1008."""

    close_code = 1008


class Member(Protocol):
    """What a room needs from a connection (a ``bocadillo_ws.WebSocket`` in the app)."""

    async def send(self, message: Any) -> None: ...


def check_text(message: object) -> str:
    """The ``text`` of a client's message, or ``PolicyViolation``."""
    if not isinstance(message, dict):
        raise PolicyViolation(f"expected a JSON object, got {type(message).__name__}")
    text = message.get("text")
    if not isinstance(text, str):
        raise PolicyViolation('expected a string "text"')
    if len(text) > MAX_TEXT:
        raise PolicyViolation(f'"text" is longer than {MAX_TEXT} characters')
    return text


def check_name(name: str | None) -> str:
    """A display name: stripped, defaulted, bounded."""
    name = (name or "").strip() or DEFAULT_NAME
    if len(name) > MAX_NAME:
        raise PolicyViolation(f"name is longer than {MAX_NAME} characters")
    return name


class Rooms:
    """Who is in which room, and delivery to them.

    One instance per app (``create_app``), so two apps in one process (tests)
    never see each other's members.
    """

    def __init__(self) -> None:
        self._rooms: dict[str, set[Member]] = {}

    def members(self, room: str) -> frozenset[Member]:
        return frozenset(self._rooms.get(room, ()))

    def rooms(self) -> list[str]:
        return sorted(self._rooms)

    async def join(self, room: str, name: str, member: Member) -> None:
        self._rooms.setdefault(room, set()).add(member)
        await self.broadcast(room, {"type": "join", "room": room, "name": name})

    async def leave(self, room: str, name: str, member: Member) -> None:
        self._discard(room, member)
        await self.broadcast(room, {"type": "leave", "room": room, "name": name})

    async def broadcast(self, room: str, event: Event) -> None:
        """Send ``event`` to everyone in ``room``, concurrently.

        A member that turns out to be gone is dropped; the others still get
        the event. (Its own connection task announces its ``leave`` when it
        sees the disconnect.)
        """
        # A snapshot: members may join or leave while the sends are awaited.
        members = list(self._rooms.get(room, ()))
        async with anyio.create_task_group() as tasks:
            for member in members:
                tasks.start_soon(self._deliver, room, member, event)

    async def _deliver(self, room: str, member: Member, event: Event) -> None:
        # Re-check membership: a member leaves the room before its connection
        # closes, so this keeps us from sending on a closed connection (which
        # Starlette refuses with a RuntimeError, not a disconnect).
        if member not in self._rooms.get(room, ()):
            return
        try:
            await member.send(event)
        except WebSocketDisconnect:
            self._discard(room, member)

    def _discard(self, room: str, member: Member) -> None:
        members = self._rooms.get(room)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self._rooms[room]  # empty rooms would otherwise pile up forever


def create_app(
    rooms: Rooms | None = None, *, allowed_origins: Iterable[str] = (), max_rate: float | None = None
) -> Starlette:
    """A fresh chat app with its own ``Rooms`` (also at ``app.state.rooms``).

    Same-origin handshakes, ``allowed_origins`` and handshakes without
    ``Origin`` are accepted; any other origin gets a 403. Messages over
    ``MAX_MESSAGE`` bytes close with 1009; ``max_rate`` (messages per second
    per client, ``None``: no limit) closes a faster client with 1008.
    """
    rooms = Rooms() if rooms is None else rooms
    origins = list(allowed_origins)
    page = PAGE.read_text(encoding="utf-8")  # read once: the page is static

    async def homepage(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    @websocket_view(
        value_type="json", same_origin=True, allowed_origins=origins, max_size=MAX_MESSAGE, max_rate=max_rate
    )
    async def chat(ws: WebSocket) -> None:
        room: str = ws.path_params["room"]
        try:
            # Accepts on entry; closes with the error's close_code (1007,
            # 1008) when a MessageError escapes, or 1011 for anything else.
            async with ws:
                if len(room) > MAX_ROOM:
                    raise PolicyViolation(f"room name is longer than {MAX_ROOM} characters")
                name = check_name(ws.query_params.get("name"))
                await rooms.join(room, name, ws)
                try:
                    async for message in ws:
                        text = check_text(message)
                        event = {"type": "message", "room": room, "name": name, "text": text, "ts": time.time()}
                        await rooms.broadcast(room, event)
                finally:
                    # Inside `async with`: leave the room before the
                    # connection is closed, so no broadcast targets it after.
                    await rooms.leave(room, name, ws)
        except MessageError as exc:
            # The connection is already closed with exc.close_code. A client's
            # bad message is not a server error: log it, no traceback.
            logger.info("closed a client in %r with %d: %s", room, exc.close_code, exc)

    app = Starlette(routes=[Route("/", homepage), WebSocketRoute("/ws/{room}", chat)])
    app.state.rooms = rooms
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="bocadillo_ws chat demo")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept WebSockets from pages of ORIGIN (repeatable; default: same origin only)",
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        default=None,
        metavar="N",
        help="close a client sending more than N messages per second with 1008 (default: no limit)",
    )
    args = parser.parse_args(argv)

    # Imported here so that importing this module (tests, other servers)
    # does not need uvicorn.
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    print(f"bocadillo_ws {bocadillo_ws.__version__}, backend: {bocadillo_ws.BACKEND}", flush=True)
    print(f"chat on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(create_app(allowed_origins=args.allow_origin, max_rate=args.max_rate), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
