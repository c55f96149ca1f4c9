"""``websocket_view``: a typed view as a Starlette/FastAPI WebSocket endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.websockets import WebSocket as StarletteWebSocket

from ._origin import OriginPolicy, refuse_cross_origin
from ._websocket import WebSocket

View = Callable[[WebSocket], Awaitable[None]]
Endpoint = Callable[[StarletteWebSocket], Awaitable[None]]


def websocket_view(
    *,
    allowed_origins: Iterable[str] | None = None,
    same_origin: bool = False,
    allow_missing_origin: bool = True,
    **options: Any,
) -> Callable[[View], Endpoint]:
    """Turn ``async def view(ws)`` into an endpoint for ``WebSocketRoute``.

    The view gets a ``bocadillo_ws.WebSocket`` built with ``options`` (the
    constructor's keywords). Whatever way the view ends, the connection ends
    as ``async with ws`` would end it: closed with 1000 after a clean return
    (a denial if it never accepted), 1003/1007 after a ``MessageError``, the
    code and reason of a Starlette ``WebSocketException``, 1011 after any
    other exception, and nothing sent after a disconnect.

    Origin check (``bocadillo_ws.OriginPolicy``), before the view runs: with
    ``allowed_origins`` and/or ``same_origin=True``, a handshake from any
    other origin is refused with HTTP 403 and the view is never called;
    ``allow_missing_origin=False`` also refuses handshakes without
    ``Origin``. With neither option, origins are not checked.
    """
    WebSocket._check_options(options)
    policy = origin_policy(allowed_origins, same_origin, allow_missing_origin)
    return lambda view: view_endpoint(view, WebSocket, options, policy)


# --------------------------------------------------------------------------- origin options


def origin_policy(
    allowed_origins: Iterable[str] | None, same_origin: bool, allow_missing_origin: bool
) -> OriginPolicy | None:
    """The view's origin policy, or ``None`` when its options ask for no check."""
    if allowed_origins is None and not same_origin:
        if not allow_missing_origin:
            raise ValueError("allow_missing_origin=False needs allowed_origins or same_origin=True")
        return None
    return OriginPolicy(allowed_origins or (), same_origin=same_origin, allow_missing_origin=allow_missing_origin)


# --------------------------------------------------------------------------- the endpoint


def view_endpoint(
    view: View, websocket_class: type[WebSocket], options: dict[str, Any], policy: OriginPolicy | None = None
) -> Endpoint:
    """The endpoint behind ``websocket_view``, for any ``WebSocket`` class (tests use both backends)."""

    async def endpoint(websocket: StarletteWebSocket) -> None:
        ws = websocket_class.from_starlette(websocket, **options)
        if policy is not None and await refuse_cross_origin(ws, policy):
            return  # refused with a 403: the view never runs
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
