"""The authentication patterns docs/security.md shows, as written there, on both backends.

Starlette's ``@requires`` on a WebSocket endpoint, and a FastAPI token query
parameter: an unauthenticated handshake is refused before accept (the
client sees a 403), an authenticated one chats with the limits on.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fastapi import FastAPI, Query, status
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser, requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x prefers httpx2 for its TestClient
    from starlette.testclient import TestClient

from bocadillo_ws import MessageTooBig, WebSocketDisconnect

TOKENS = {"s3cret": "ana"}


async def user_for_token(token: str) -> str | None:
    return TOKENS.get(token)


class TokenBackend(AuthenticationBackend):
    """Authenticated when the ``token`` cookie is known (a browser sends cookies with the handshake)."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        user = await user_for_token(conn.cookies.get("token", ""))
        return None if user is None else (AuthCredentials(["authenticated"]), SimpleUser(user))


class Swallow:
    """Keeps the exception the app re-raises after closing (a server would log it), so the close can be read."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.errors.append(exc)


def refused_code(client: TestClient, url: str, **kwargs: Any) -> int:
    """The close code of a handshake refused before accept (a real server answers it with a 403)."""
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(url, **kwargs):
            pass  # pragma: no cover
    return refused.value.code


def test_requires_on_a_websocket_endpoint(impl: Any) -> None:
    @requires("authenticated")
    async def chat(websocket: StarletteWebSocket) -> None:
        ws = impl.WebSocket.from_starlette(websocket, value_type="json")
        async with ws:
            async for message in ws:
                await ws.send({"from": ws.user.display_name, **message})

    app = Starlette(
        routes=[WebSocketRoute("/ws", chat)], middleware=[Middleware(AuthenticationMiddleware, backend=TokenBackend())]
    )
    client = TestClient(app)
    assert refused_code(client, "/ws") == 1000  # Starlette's close() before accept
    client.cookies.set("token", "s3cret")
    with client.websocket_connect("/ws") as session:
        session.send_json({"text": "hi"})
        assert session.receive_json() == {"from": "ana", "text": "hi"}


def test_fastapi_token_query_parameter(impl: Any) -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def ws_endpoint(websocket: FastAPIWebSocket, token: str = Query()) -> None:
        user = await user_for_token(token)
        if user is None:
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION)  # before accept: 403
            return
        ws = impl.WebSocket.from_starlette(websocket, value_type="json", max_size=64 * 1024)
        async with ws:
            async for message in ws:
                await ws.send({"from": user, **message})

    swallow = Swallow(app)
    client = TestClient(swallow)
    assert refused_code(client, "/ws") == 1008  # no token: FastAPI's validation refuses it
    assert refused_code(client, "/ws?token=wrong") == 1008
    with client.websocket_connect("/ws?token=s3cret") as session:
        session.send_json({"text": "hi"})
        assert session.receive_json() == {"from": "ana", "text": "hi"}
        session.send_text('{"text": "' + "x" * 64 * 1024 + '"}')  # over max_size
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_json()
        assert closed.value.code == 1009
    [error] = swallow.errors  # re-raised after the close, as the contract says
    assert isinstance(error, MessageTooBig)
