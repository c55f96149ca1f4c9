"""FastAPI: endpoints that get a ``bocadillo_ws.WebSocket``.

Change one import and nothing else::

    from bocadillo_ws.fastapi import WebSocket      # instead of: from fastapi import WebSocket

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str, token: str | None = None) -> None: ...

``WebSocket`` here is ``Annotated[bocadillo_ws.WebSocket, Depends(...)]``:
FastAPI's dependency injection builds it from the connection (path and
query parameters, other dependencies, ``WebSocketException`` and background
tasks work as usual). ``JSONWebSocket`` and ``BytesWebSocket`` are the same
with ``value_type="json"`` / ``"bytes"``; for other options (FastAPI >= 0.135
accepts ``Depends`` on a WebSocket-typed parameter; before it, annotate with
``bocadillo_ws.fastapi.Provided`` instead of ``bocadillo_ws.WebSocket``)::

    Chat = Annotated[bocadillo_ws.WebSocket, WebSocketOptions(value_type="json", max_size=65536)]

A bare ``websocket: bocadillo_ws.WebSocket`` annotation is a Starlette
``WebSocket`` subclass, so FastAPI hands such a parameter its *own* Starlette
object and nothing of ours runs. ``install(app)`` is the one-line, app-wide
opt-in that makes the bare annotation work (see its docstring).
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIWebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from . import _websocket

__all__ = ["BytesWebSocket", "JSONWebSocket", "Provided", "WebSocket", "WebSocketOptions", "install"]

# A bocadillo WebSocket class that FastAPI does not take for Starlette's
# (the public class's mixin): for Annotated[Provided, WebSocketOptions(...)].
Provided = _websocket.WebSocketAPI

Provider = Callable[[StarletteWebSocket], Awaitable[_websocket.WebSocketAPI]]

# One provider per (class, options): FastAPI caches a dependency per connection
# by its callable, so every parameter asking for the same options shares one object.
_providers: dict[tuple[type[_websocket.WebSocketAPI], tuple[tuple[str, Any], ...]], Provider] = {}


def provider(websocket_class: type[_websocket.WebSocketAPI] = _websocket.WebSocket, **options: Any) -> Provider:
    """The dependency that builds ``websocket_class(**options)`` from FastAPI's connection."""
    websocket_class._check_options(options)
    key = (websocket_class, tuple(sorted(options.items(), key=lambda item: item[0])))
    try:
        return _providers[key]
    except (KeyError, TypeError):  # TypeError: an unhashable option (a codec object)
        pass

    async def provide_websocket(websocket: StarletteWebSocket) -> _websocket.WebSocketAPI:
        return websocket_class.from_starlette(websocket, **options)

    provide_websocket.__qualname__ = f"provide_{websocket_class.__name__}"
    try:
        _providers[key] = provide_websocket
    except TypeError:
        pass
    return provide_websocket


def WebSocketOptions(**options: Any) -> Any:
    """``Annotated[bocadillo_ws.WebSocket, WebSocketOptions(**options)]``: the constructor's keywords."""
    return Depends(provider(**options))


if TYPE_CHECKING:
    WebSocket = Annotated[_websocket.WebSocket, WebSocketOptions()]
    JSONWebSocket = Annotated[_websocket.WebSocket, WebSocketOptions(value_type="json")]
    BytesWebSocket = Annotated[_websocket.WebSocket, WebSocketOptions(value_type="bytes")]
else:
    # At run time FastAPI sees the mixin, not a Starlette WebSocket subclass:
    # FastAPI before 0.135 refuses `Depends` on a WebSocket-typed parameter.
    WebSocket = Annotated[_websocket.WebSocketAPI, WebSocketOptions()]
    JSONWebSocket = Annotated[_websocket.WebSocketAPI, WebSocketOptions(value_type="json")]
    BytesWebSocket = Annotated[_websocket.WebSocketAPI, WebSocketOptions(value_type="bytes")]


def install(app: FastAPI, **options: Any) -> None:
    """Make a bare ``websocket: bocadillo_ws.WebSocket`` parameter work on every route of ``app``.

    Call it once, after creating the app (routes added before and after are
    covered, also through ``include_router``). Every WebSocket route whose
    endpoint or dependencies annotate a parameter with ``bocadillo_ws.WebSocket``
    (or a subclass) then gets one built with ``options``, instead of FastAPI's
    Starlette object. Routes that ask for Starlette's/FastAPI's own
    ``WebSocket`` are left alone. A mounted sub-application needs its own call.
    Nothing is changed by importing this module: only by calling this.
    """
    _websocket.WebSocket._check_options(options)
    router = app.router
    for route in router.routes:
        _convert(route, options)
    if getattr(router.add_api_websocket_route, "_bocadillo_ws", False):
        return
    add_route = router.add_api_websocket_route

    def add_api_websocket_route(*args: Any, **kwargs: Any) -> None:
        count = len(router.routes)
        add_route(*args, **kwargs)
        for route in router.routes[count:]:
            _convert(route, options)

    add_api_websocket_route._bocadillo_ws = True  # type: ignore[attr-defined]
    router.add_api_websocket_route = add_api_websocket_route  # type: ignore[method-assign]


def _convert(route: object, options: dict[str, Any]) -> None:
    if isinstance(route, APIWebSocketRoute) and not getattr(route, "_bocadillo_ws", False):
        _convert_dependant(route.dependant, options)
        route._bocadillo_ws = True  # type: ignore[attr-defined]


def _convert_dependant(dependant: Dependant, options: dict[str, Any]) -> None:
    # A parameter FastAPI would hand its Starlette object becomes a dependency
    # on our provider, which wraps that object (from_starlette).
    name = dependant.websocket_param_name
    if name is not None and dependant.call is not None:
        wanted = _annotation(dependant.call, name)
        if isinstance(wanted, type) and issubclass(wanted, _websocket.WebSocketAPI):  # any bocadillo class
            sub = get_dependant(path=dependant.path or "", call=provider(wanted, **options), name=name)
            dependant.websocket_param_name = None
            dependant.dependencies.append(sub)
    for sub_dependant in dependant.dependencies:
        _convert_dependant(sub_dependant, options)


def _annotation(call: Callable[..., Any], name: str) -> object:
    target = call if callable(call) and not isinstance(call, type) else getattr(call, "__init__", call)
    try:
        hints = typing.get_type_hints(target, include_extras=False)
    except Exception:  # an annotation that does not resolve: FastAPI already read it; leave it
        return None
    return hints.get(name)
