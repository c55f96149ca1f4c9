"""``websocket_view``: a typed view as a Starlette/FastAPI WebSocket endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket as StarletteWebSocket

from ._websocket import WebSocket

View = Callable[[WebSocket], Awaitable[None]]
Endpoint = Callable[[StarletteWebSocket], Awaitable[None]]


def websocket_view(**options: Any) -> Callable[[View], Endpoint]:
    """Turn ``async def view(ws)`` into an endpoint for ``WebSocketRoute``.

    The view gets a ``bocadillo_ws.WebSocket`` built with ``options`` (the
    constructor's keywords). Whatever way the view ends, the connection ends
    as ``async with ws`` would end it: closed with 1000 after a clean return
    (a denial if it never accepted), 1003/1007 after a ``MessageError``, the
    code and reason of a Starlette ``WebSocketException``, 1011 after any
    other exception, and nothing sent after a disconnect.
    """
    WebSocket._check_options(options)
    return lambda view: view_endpoint(view, WebSocket, options)


def view_endpoint(view: View, websocket_class: type[WebSocket], options: dict[str, Any]) -> Endpoint:
    """The endpoint behind ``websocket_view``, for any ``WebSocket`` class (tests use both backends)."""

    async def endpoint(websocket: StarletteWebSocket) -> None:
        ws = websocket_class.from_starlette(websocket, **options)
        try:
            await view(ws)
        except BaseException as exc:
            if not await ws.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await ws.__aexit__(None, None, None)

    # Name and doc only: no __wrapped__, so signature introspection
    # (FastAPI's) sees the endpoint's real parameter.
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(endpoint, attribute, getattr(view, attribute, None))
    return endpoint
