"""A small multi-room chat on Starlette and bocadillo_ws.

Run it, from the repository root, with bocadillo_ws installed::

    python demo/chat.py [--host 127.0.0.1] [--port 8000] [--redis URL [--workers N]]
                        [--allow-origin ORIGIN ...] [--allow-host HOST ...] [--max-rate N]

Rooms are ``bocadillo_ws.Hub`` rooms: in this process by default; with
``--redis redis://127.0.0.1:6379/0`` every process on that Redis shares
them (several ``chat.py`` on several ports or hosts, or ``--workers N``).

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
  - ``{"type": "gap", "text": ...}`` when the link to Redis was down for a
    while: messages sent through other servers meanwhile may be missing.
- server → the sender only: ``{"type": "error", "text": ...}`` when Redis did
  not take its message (the members on this server got it; the connection
  stays open).

The ``name`` query parameter is optional (``anonymous`` by default), at most
32 characters once stripped of surrounding spaces; a room name is at most
64 characters.

Origins: a handshake from another site's page is refused with HTTP 403
(Cross-Site WebSocket Hijacking; docs/security.md). The demo's own page
(same origin) is accepted, and so are the origins given with
``--allow-origin`` (repeatable; ``https://*.example.com`` for subdomains)
and handshakes without ``Origin`` (non-browser clients).

Hosts: every request (the page and the WebSocket) must name a host the
demo was started for in its ``Host`` header: ``127.0.0.1`` and
``localhost``, the ``--host`` address, and those given with
``--allow-host`` (repeatable; ``*.example.com`` for subdomains). Any other
gets HTTP 400 (Starlette's ``TrustedHostMiddleware``). The same-origin check
trusts ``Host``, so without this a DNS-rebinding page (its own name pointed
at 127.0.0.1) would pass it.

Close codes the server uses:

- ``1000``: normal closure (server shutting down the connection cleanly).
- ``1007``: the frame is not valid JSON, or a binary frame is not valid UTF-8
  (``bocadillo_ws.InvalidJSON``); or its text cannot be sent on as UTF-8
  (a lone surrogate such as ``"\\ud800"``: ``UnsendableText``).
- ``1008``: policy violation (``PolicyViolation`` below): the JSON is not an
  object with a string ``"text"`` of at most 2000 characters, or the name or
  room name is too long; or, with ``--max-rate N``, the client sent more than
  N messages per second (``bocadillo_ws.RateLimited``; off by default, so
  load tests and benchmarks are unaffected).
- ``1009``: a message over 64 KiB (``bocadillo_ws.MessageTooBig``).
- ``1011``: an unexpected server error.
- ``1013``: try again later: the client read too slowly and its backlog
  (``bocadillo_ws.Hub``'s ``max_queue``) overflowed.

A bad message ends only the connection that sent it; the others in the room
see that client's ``leave`` notice.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute

import bocadillo_ws
from bocadillo_ws import (
    Hub,
    HubUnavailable,
    MessageError,
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
    websocket_view,
)

MAX_TEXT = 2000
MAX_NAME = 32
MAX_ROOM = 64
MAX_MESSAGE = 64 * 1024  # bytes per frame: far above a 2000-character message, far below every server's cap
DEFAULT_NAME = "anonymous"
PAGE = Path(__file__).with_name("index.html")
REDIS_VARIABLE = "BOCADILLO_WS_CHAT_REDIS"  # --workers: how each worker learns the Redis URL
ORIGINS_VARIABLE = "BOCADILLO_WS_CHAT_ORIGINS"  # ... the --allow-origin list (space-separated)
MAX_RATE_VARIABLE = "BOCADILLO_WS_CHAT_MAX_RATE"  # ... the --max-rate
HOSTS_VARIABLE = "BOCADILLO_WS_CHAT_HOSTS"  # ... and the hosts served (space-separated)
DEFAULT_HOSTS = ("127.0.0.1", "localhost")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")  # --host values that name no host

logger = logging.getLogger("chat")

Event = dict[str, Any]


class PolicyViolation(MessageError):
    """The client sent something the chat refuses: closes with 1008."""

    close_code = 1008


class UnsendableText(MessageError):
    """The client's text cannot be sent on as UTF-8 (a lone surrogate): closes with 1007."""

    close_code = 1007


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


GAP_NOTICE = {"type": "gap", "text": "you may have missed messages (the link between servers was down)"}


def create_hub(redis: str | None = None) -> Hub:
    """The chat's rooms: in memory, or shared through Redis at ``redis``."""
    return Hub(redis, gap_notice=GAP_NOTICE)


def create_app(
    hub: Hub | None = None,
    *,
    allowed_origins: Iterable[str] = (),
    allowed_hosts: Iterable[str] = DEFAULT_HOSTS,
    max_rate: float | None = None,
) -> Starlette:
    """A fresh chat app with its own ``Hub`` (also at ``app.state.hub`` and ``app.state.rooms``).

    Requests must name one of ``allowed_hosts`` in ``Host`` (else HTTP 400:
    DNS rebinding). Same-origin handshakes, ``allowed_origins`` and
    handshakes without ``Origin`` are accepted; any other origin gets a 403.
    Messages over ``MAX_MESSAGE`` bytes close with 1009; ``max_rate``
    (messages per second per client, ``None``: no limit) closes a faster
    client with 1008.
    """
    hub = create_hub() if hub is None else hub
    page = PAGE.read_text(encoding="utf-8")  # read once: the page is static

    async def homepage(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    options: dict[str, Any] = {"value_type": "json", "max_size": MAX_MESSAGE, "max_rate": max_rate}
    chat = websocket_view(same_origin=True, allowed_origins=list(allowed_origins), **options)(chat_view(hub))
    app = Starlette(
        routes=[Route("/", homepage), WebSocketRoute("/ws/{room}", chat)],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
        lifespan=hub.lifespan,
    )
    app.state.hub = app.state.rooms = hub
    return app


def check_sendable(text: str, what: str) -> str:
    """``text``, or ``UnsendableText`` when it cannot be UTF-8 (a lone surrogate from a ``\\ud800`` escape)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise UnsendableText(f"{what} cannot be sent as UTF-8 (a lone surrogate)") from None
    return text


def chat_view(hub: Hub) -> Callable[[WebSocket], Awaitable[None]]:
    """The chat's WebSocket view over ``hub`` (``create_app`` makes it an endpoint with ``websocket_view``)."""

    async def publish(ws: WebSocket, room: str, event: Event) -> None:
        try:
            await hub.publish(room, event)
        except ValueError as exc:  # the hub refused it before anyone got it
            raise UnsendableText(str(exc)) from exc
        except HubUnavailable:
            # This server's members got it; the others did not. Say so, keep the connection.
            logger.warning("Redis is unavailable: a message in %r reached this server only", room)
            if ws.application_state == WebSocketState.CONNECTED:
                try:
                    await ws.send({"type": "error", "text": "not delivered to other servers (Redis unavailable)"})
                except WebSocketDisconnect:
                    pass  # the sender is gone too (this was its leave notice)

    async def chat(ws: WebSocket) -> None:
        room: str = ws.path_params["room"]
        try:
            # Accepts on entry; closes with the error's close_code (1007,
            # 1008) when a MessageError escapes, or 1011 for anything else.
            async with ws:
                if len(room) > MAX_ROOM:
                    raise PolicyViolation(f"room name is longer than {MAX_ROOM} characters")
                check_sendable(room, "the room name")
                name = check_sendable(check_name(ws.query_params.get("name")), "the name")
                try:
                    # The hub removes ws from the room however this block ends.
                    async with hub.join(room, ws):
                        await publish(ws, room, {"type": "join", "room": room, "name": name})
                        async for message in ws:
                            text = check_text(message)
                            event = {"type": "message", "room": room, "name": name, "text": text, "ts": time.time()}
                            await publish(ws, room, event)
                finally:
                    # Out of the room already, before the connection is closed.
                    await publish(ws, room, {"type": "leave", "room": room, "name": name})
        except MessageError as exc:
            # The connection is already closed with exc.close_code. A client's
            # bad message is not a server error: log it, no traceback.
            logger.info("closed a client in %r with %d: %s", room, exc.close_code, exc)

    return chat


def hosts_served(host: str, extra: Iterable[str]) -> list[str]:
    """The ``Host`` names the demo answers: the defaults, the address it binds (unless a wildcard), ``extra``."""
    hosts = [*DEFAULT_HOSTS, *extra]
    if host not in WILDCARD_ADDRESSES and host not in hosts:
        hosts.append(host)
    return hosts


def app_from_environment() -> Starlette:
    """The app of each ``--workers`` process: Redis URL, origins, hosts and rate come through the environment."""
    max_rate = os.environ.get(MAX_RATE_VARIABLE)
    return create_app(
        create_hub(os.environ[REDIS_VARIABLE]),
        allowed_origins=os.environ.get(ORIGINS_VARIABLE, "").split(),
        allowed_hosts=os.environ.get(HOSTS_VARIABLE, " ".join(DEFAULT_HOSTS)).split(),
        max_rate=None if not max_rate else float(max_rate),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="bocadillo_ws chat demo")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--redis", metavar="URL", help="share rooms with every process on this Redis (redis://...)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (above 1 needs --redis)")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept WebSockets from pages of ORIGIN (repeatable; default: same origin only)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also serve requests for HOST (repeatable; *.example.com for subdomains; default: 127.0.0.1, localhost"
        " and the --host address)",
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        default=None,
        metavar="N",
        help="close a client sending more than N messages per second with 1008 (default: no limit)",
    )
    args = parser.parse_args(argv)
    if args.workers > 1 and args.redis is None:
        parser.error("--workers above 1 needs --redis (workers share rooms only through Redis)")
    hosts = hosts_served(args.host, args.allow_host)

    # Imported here so that importing this module (tests, other servers)
    # does not need uvicorn.
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    print(f"bocadillo_ws {bocadillo_ws.__version__}, backend: {bocadillo_ws.BACKEND}", flush=True)
    rooms = "in this process" if args.redis is None else f"shared through {args.redis}"
    print(f"chat on http://{args.host}:{args.port}/, rooms {rooms}", flush=True)
    if args.workers > 1:
        # Each worker imports this file by name (demo/ as app_dir) and builds its app.
        os.environ[REDIS_VARIABLE] = args.redis
        os.environ[ORIGINS_VARIABLE] = " ".join(args.allow_origin)
        os.environ[MAX_RATE_VARIABLE] = "" if args.max_rate is None else repr(args.max_rate)
        os.environ[HOSTS_VARIABLE] = " ".join(hosts)
        uvicorn.run(
            "chat:app_from_environment",
            factory=True,
            workers=args.workers,
            app_dir=str(Path(__file__).parent),
            host=args.host,
            port=args.port,
        )
    else:
        app = create_app(
            create_hub(args.redis), allowed_origins=args.allow_origin, allowed_hosts=hosts, max_rate=args.max_rate
        )
        uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
