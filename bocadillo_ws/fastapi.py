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
opt-in that makes the bare annotation work (see its docstring); it acts when
a connection's dependencies are solved, so every route of the app is covered,
however and whenever it was added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI

from . import _fastapi_install, _websocket
from ._fastapi_install import Provider

__all__ = ["BytesWebSocket", "JSONWebSocket", "Provided", "WebSocket", "WebSocketOptions", "install"]

# A bocadillo WebSocket class that FastAPI does not take for Starlette's
# (the public class's mixin): for Annotated[Provided, WebSocketOptions(...)].
Provided = _websocket.WebSocketAPI


def provider(websocket_class: type[_websocket.WebSocketAPI] = _websocket.WebSocket, **options: Any) -> Provider:
    """The dependency that builds ``websocket_class(**options)`` from FastAPI's connection.

    One per (class, options): FastAPI caches a dependency per connection by its
    callable, and the object is kept per connection too, so every parameter
    asking for the same class and options (through ``install`` as well) shares
    one object.
    """
    return _fastapi_install.recipe(websocket_class, options).provide


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

    Call it once, after creating the app. From then on, whenever FastAPI
    solves a WebSocket connection's dependencies, each parameter annotated
    with ``bocadillo_ws.WebSocket`` (or a subclass: that class is built) gets
    one built with ``options`` by ``from_starlette``, instead of FastAPI's
    Starlette object: in the endpoint, its dependencies and sub-dependencies,
    a callable-instance dependency (``Depends(Auth())``), and
    ``app.dependency_overrides`` (set before or after this call, changed
    between connections). It works on routes added before and after the call,
    however added (``@app.websocket``, ``add_api_websocket_route``,
    ``include_router``, nested routers, prefixes), because it acts at request
    time, not on the routes. Every parameter of one connection asking for the
    same class and options (the ``Annotated`` aliases included) gets the same
    object. Parameters annotated with Starlette's/FastAPI's own ``WebSocket``
    keep FastAPI's object.

    Only connections served by ``app`` itself are converted (Starlette's
    ``scope["app"]``): another app in the process is unaffected, and a
    mounted sub-application needs its own call. Calling it again with the
    same options does nothing; with other options it raises ``RuntimeError``
    (the first options would otherwise silently stay). Bad options raise as
    the constructor would, at the call.

    How: FastAPI has no public hook for this, so the first call wraps FastAPI's
    ``solve_dependencies`` once per process (the one function every route,
    dependency and override goes through at request time; why there:
    ``bocadillo_ws._fastapi_install``); the wrapper lets FastAPI's call run
    unchanged and, for installed apps only, replaces the value of such a
    parameter afterwards. Cost: per connection, less than the ``Annotated``
    alias (which is a dependency); nothing per message; other apps pay one
    function call per dependant solved (``benchmarks/bench_fastapi_install.py``).
    Importing this module changes nothing.
    """
    if not isinstance(app, FastAPI):
        raise TypeError(f"install() expects a FastAPI app, got {type(app).__name__}")
    _websocket.WebSocket._check_options(options)
    installed = _fastapi_install.installation(app)
    if installed is None:
        _fastapi_install.register(app, options)
    elif installed.options != options:
        raise RuntimeError(
            f"bocadillo_ws.fastapi.install() was already called on this app with {installed.options!r}; "
            f"it cannot change to {options!r} (call it once, with the options you want)"
        )
