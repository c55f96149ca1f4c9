"""FastAPI and Starlette hand endpoints a ``bocadillo_ws.WebSocket`` (issue 10, part 3).

``bocadillo_ws.fastapi``'s ``Annotated`` aliases (one import, endpoint body
unchanged), the app-wide ``install(app)`` opt-in for the bare annotation,
what the bare annotation does without it, and Starlette's ``@requires``.
Both backends: the live class through the aliases, the fixture's class
through ``provider()`` / ``install()``, which take any bocadillo class.
"""

# No `from __future__ import annotations`: FastAPI must see the endpoints' annotations,
# which name test-local classes, as objects.

import warnings
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, WebSocketException
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser, requires
from starlette.endpoints import WebSocketEndpoint
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x prefers httpx2 for its TestClient
    from starlette.testclient import TestClient

import bocadillo_ws
import bocadillo_ws.fastapi as bws_fastapi
from bocadillo_ws import WebSocketDisconnect
from bocadillo_ws._view import view_endpoint


class TokenAuth(AuthenticationBackend):
    """Authenticated when the query string carries token=secret."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        if conn.query_params.get("token") != "secret":
            return None
        return AuthCredentials(["authenticated"]), SimpleUser("ana")


def test_the_alias_gives_a_typed_websocket_with_path_query_and_dependencies() -> None:
    # The README's FastAPI way: one import changes, the body stays as it was.
    from bocadillo_ws.fastapi import JSONWebSocket

    app = FastAPI()
    seen: list[Any] = []

    async def room_owner(websocket: JSONWebSocket, room: str) -> str:
        seen.append(websocket)  # the same object the endpoint gets
        return f"{room}-owner"

    @app.websocket("/ws/{room}")
    async def chat(websocket: JSONWebSocket, room: str, owner: Annotated[str, Depends(room_owner)], n: int = 1) -> None:
        await websocket.accept()
        message = await websocket.receive()
        await websocket.send({"room": room, "owner": owner, "n": n, "echo": message, "class": type(websocket).__name__})
        tasks = BackgroundTasks()
        tasks.add_task(websocket.send_json, {"from": "background task"})
        await tasks()
        seen.append(websocket)

    with TestClient(app) as client, client.websocket_connect("/ws/lobby?n=3") as ws:
        ws.send_json({"hi": 1})
        assert ws.receive_json() == {"room": "lobby", "owner": "lobby-owner", "n": 3, "echo": {"hi": 1},
                                     "class": "WebSocket"}
        assert ws.receive_json() == {"from": "background task"}
    assert seen[0] is seen[1] and isinstance(seen[0], bocadillo_ws.WebSocket)
    assert seen[0].receive_type == "json"


def test_options_marker_and_websocket_exception(WebSocket: type[Any]) -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(
        websocket: Annotated[Any, Depends(bws_fastapi.provider(WebSocket, value_type="bytes", max_size=4))],
    ) -> None:
        await websocket.accept()
        data = await websocket.receive()
        if data == b"deny":
            raise WebSocketException(code=4001, reason="no")
        await websocket.send(data[::-1])

    with TestClient(app) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_bytes(b"abc")
            assert ws.receive_bytes() == b"cba"
        with client.websocket_connect("/ws") as ws:
            ws.send_bytes(b"deny")
            message = ws.receive()
            assert (message["type"], message["code"], message.get("reason")) == ("websocket.close", 4001, "no")


def test_options_are_checked_when_the_alias_is_made() -> None:
    with pytest.raises(ValueError, match="value_type must be one of"):
        bws_fastapi.WebSocketOptions(value_type="xml")
    with pytest.raises(TypeError, match="Unknown WebSocket option"):
        bws_fastapi.WebSocketOptions(valu_type="json")


def test_bare_annotation_without_install_gets_fastapis_own_object(WebSocket: type[Any]) -> None:
    # Documented: FastAPI sees a Starlette WebSocket subclass and hands over
    # its own object; nothing of ours runs (receive() is Starlette's raw event).
    app = FastAPI()
    got: list[Any] = []

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:  # type: ignore[valid-type]
        got.append(type(websocket))
        await websocket.accept()
        event = await websocket.receive()
        await websocket.send_text(event["text"])

    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("raw")
        assert ws.receive_text() == "raw"
    assert got == [StarletteWebSocket]


def test_install_makes_the_bare_annotation_work_on_every_route(WebSocket: type[Any]) -> None:
    app = FastAPI()

    @app.websocket("/before/{room}")
    async def before(websocket: WebSocket, room: str, name: str = "anon") -> None:  # type: ignore[valid-type]
        assert type(websocket) is WebSocket
        await websocket.accept()
        await websocket.send({"room": room, "name": name, "echo": await websocket.receive()})
        await websocket.close()

    bws_fastapi.install(app, value_type="json")
    bws_fastapi.install(app, value_type="json")  # twice is harmless

    @app.websocket("/after")
    async def after(websocket: WebSocket) -> None:  # type: ignore[valid-type]
        async with websocket:
            await websocket.send({"class": type(websocket) is WebSocket})

    router = APIRouter()

    @router.websocket("/included")
    async def included(websocket: StarletteWebSocket) -> None:
        # Asked for Starlette's own class: left alone.
        await websocket.accept()
        await websocket.send_text(type(websocket).__name__ + ":" + type(websocket).__module__)
        await websocket.close()

    app.include_router(router)

    with TestClient(app) as client:
        with client.websocket_connect("/before/lobby?name=ana") as ws:
            ws.send_json([1])
            assert ws.receive_json() == {"room": "lobby", "name": "ana", "echo": [1]}
        with client.websocket_connect("/after") as ws:
            assert ws.receive_json() == {"class": True}
        with client.websocket_connect("/included") as ws:
            assert ws.receive_text() == "WebSocket:starlette.websockets"


def test_install_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="send_type must be one of"):
        bws_fastapi.install(FastAPI(), send_type="yaml")


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_requires_accepts_our_websocket(WebSocket: type[Any], framework: str) -> None:
    # Starlette's @requires checks isinstance(websocket, starlette WebSocket).
    async def view(websocket: Any) -> None:
        async with websocket:
            await websocket.send_text(f"hello {websocket.user.display_name}")

    guarded = requires("authenticated")(view)
    if framework == "starlette":
        endpoint = view_endpoint(guarded, WebSocket, {})
        app: Any = Starlette(routes=[WebSocketRoute("/ws", endpoint)],
                             middleware=[Middleware(AuthenticationMiddleware, backend=TokenAuth())])
    else:
        app = FastAPI(middleware=[Middleware(AuthenticationMiddleware, backend=TokenAuth())])

        @app.websocket("/ws")
        @requires("authenticated")
        async def endpoint_(websocket: Annotated[Any, Depends(bws_fastapi.provider(WebSocket))]) -> None:
            assert type(websocket) is WebSocket
            await view(websocket)

    with TestClient(app) as client:
        with client.websocket_connect("/ws?token=secret") as ws:
            assert ws.receive_text() == "hello ana"
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws") as ws:
            ws.receive_text()  # refused: closed before accept


def test_websocket_endpoint_subclass_keeps_starlettes_dispatch(WebSocket: type[Any]) -> None:
    # Starlette's WebSocketEndpoint.dispatch() builds its own Starlette WebSocket
    # and reads raw events from its receive(): the documented way is to wrap
    # that object in on_connect, for the typed sends and the close codes.
    class Echo(WebSocketEndpoint):
        encoding = "json"

        async def on_connect(self, websocket: StarletteWebSocket) -> None:
            self.ws = WebSocket.from_starlette(websocket, value_type="json")
            await self.ws.accept()

        async def on_receive(self, websocket: StarletteWebSocket, data: Any) -> None:
            await self.ws.send({"echo": data})
            if data == "bye":
                await self.ws.close(4000)

    app = Starlette(routes=[WebSocketRoute("/ws", Echo)])
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"n": 1})
        assert ws.receive_json() == {"echo": {"n": 1}}
        ws.send_json("bye")
        assert ws.receive_json() == {"echo": "bye"}
        assert ws.receive()["code"] == 4000
