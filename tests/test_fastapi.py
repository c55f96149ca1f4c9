"""FastAPI and Starlette hand endpoints a ``bocadillo_ws.WebSocket`` (issue 10, part 3).

``bocadillo_ws.fastapi``'s ``Annotated`` aliases (one import, endpoint body
unchanged), the app-wide ``install(app)`` opt-in for the bare annotation,
what the bare annotation does without it, and Starlette's ``@requires``.
Both backends: the live class through the aliases, the fixture's class
through ``provider()`` / ``install()``, which take any bocadillo class.
"""

# No `from __future__ import annotations`: FastAPI must see the endpoints' annotations,
# which name test-local classes, as objects.

import subprocess
import sys
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
from bocadillo_ws import MessageTooBig, WebSocketDisconnect
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


# ---------------------------------------------------------------- install(app): converts at request time
# (issue 18, part 4). FastAPI 0.165 builds the routes of an included router
# lazily and an override's dependant on every request, so install() converts
# when a connection's dependencies are solved, not on the routes.


def _echo_class(WebSocket: type[Any], label: str) -> Any:
    """An endpoint that says which class it got, through the typed API (JSON)."""

    async def endpoint(websocket: WebSocket) -> None:  # type: ignore[valid-type]
        async with websocket:  # a Starlette object has no `async with`: the test would fail here
            await websocket.send({"route": label, "ours": type(websocket) is WebSocket,
                                  "receive_type": websocket.receive_type})

    return endpoint


def _routes_of_every_style(app: FastAPI, WebSocket: type[Any]) -> None:
    app.websocket("/decorated/{room}")(_echo_class(WebSocket, "decorated"))  # @app.websocket(...)
    app.add_api_websocket_route("/added", _echo_class(WebSocket, "added"))

    included = APIRouter()
    included.add_api_websocket_route("/included", _echo_class(WebSocket, "included"))
    app.include_router(included)

    prefixed = APIRouter(prefix="/prefixed")
    prefixed.add_api_websocket_route("/route", _echo_class(WebSocket, "prefixed"))
    app.include_router(prefixed, prefix="/v1")

    outer, inner = APIRouter(prefix="/outer"), APIRouter(prefix="/inner")
    inner.add_api_websocket_route("/deep/{n}", _echo_class(WebSocket, "nested"))
    outer.include_router(inner)
    app.include_router(outer, prefix="/v2")


ROUTES = {
    "/decorated/lobby": "decorated",
    "/added": "added",
    "/included": "included",
    "/v1/prefixed/route": "prefixed",
    "/v2/outer/inner/deep/3": "nested",
}


@pytest.mark.parametrize("install_first", [True, False], ids=["install-then-routes", "routes-then-install"])
def test_install_reaches_every_route_however_added(WebSocket: type[Any], install_first: bool) -> None:
    app = FastAPI()
    if install_first:
        bws_fastapi.install(app, value_type="json")
    _routes_of_every_style(app, WebSocket)
    if not install_first:
        bws_fastapi.install(app, value_type="json")

    with TestClient(app) as client:
        for path, label in ROUTES.items():
            with client.websocket_connect(path) as ws:
                assert ws.receive_json() == {"route": label, "ours": True, "receive_type": "json"}, path


def test_install_leaves_starlettes_annotation_alone_on_included_routes(WebSocket: type[Any]) -> None:
    app = FastAPI()
    router = APIRouter(prefix="/r")

    @router.websocket("/starlette")
    async def starlette_one(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"{type(websocket).__module__}.{type(websocket).__name__}")
        await websocket.close()

    router.add_api_websocket_route("/ours", _echo_class(WebSocket, "ours"))
    app.include_router(router)
    bws_fastapi.install(app, value_type="json")

    with TestClient(app) as client:
        with client.websocket_connect("/r/starlette") as ws:
            assert ws.receive_text() == "starlette.websockets.WebSocket"
        with client.websocket_connect("/r/ours") as ws:
            assert ws.receive_json() == {"route": "ours", "ours": True, "receive_type": "json"}


def test_install_reaches_dependencies_of_every_kind_with_one_object(WebSocket: type[Any]) -> None:
    seen: list[tuple[str, Any]] = []

    async def room_of(websocket: WebSocket, room: str) -> str:  # type: ignore[valid-type]
        seen.append(("sub-dependency", websocket))
        return room

    async def member(websocket: WebSocket, room: Annotated[str, Depends(room_of)]) -> str:  # type: ignore[valid-type]
        seen.append(("dependency", websocket))
        return f"ana@{room}"

    def in_a_thread(websocket: WebSocket) -> str:  # type: ignore[valid-type]
        seen.append(("sync dependency", websocket))
        return "sync"

    async def with_cleanup(websocket: WebSocket) -> Any:  # type: ignore[valid-type]
        seen.append(("generator dependency", websocket))
        yield "gen"

    class Auth:  # a callable-instance dependency: Depends(Auth())
        async def __call__(self, websocket: WebSocket) -> str:  # type: ignore[valid-type]
            seen.append(("callable instance", websocket))
            return "auth"

    class Session:  # a class dependency: Depends(Session)
        def __init__(self, websocket: WebSocket) -> None:  # type: ignore[valid-type]
            seen.append(("class", websocket))

    def raw(websocket: StarletteWebSocket) -> StarletteWebSocket:
        return websocket

    app = FastAPI()
    router = APIRouter(prefix="/chat", dependencies=[Depends(Auth())])

    @router.websocket("/{room}")
    async def chat(
        websocket: WebSocket,  # type: ignore[valid-type]
        who: Annotated[str, Depends(member)],
        sync: Annotated[str, Depends(in_a_thread)],
        gen: Annotated[str, Depends(with_cleanup)],
        session: Annotated[Session, Depends()],
        starlettes: Annotated[Any, Depends(raw)],
    ) -> None:
        seen.append(("endpoint", websocket))
        async with websocket:
            await websocket.send({"who": who, "values": [sync, gen], "session": type(session).__name__,
                                  "starlettes": isinstance(starlettes, StarletteWebSocket)
                                  and not isinstance(starlettes, bocadillo_ws.WebSocket)})

    app.include_router(router)
    bws_fastapi.install(app, value_type="json")

    with TestClient(app) as client, client.websocket_connect("/chat/lobby") as ws:
        assert ws.receive_json() == {"who": "ana@lobby", "values": ["sync", "gen"], "session": "Session",
                                     "starlettes": True}
    assert sorted(kind for kind, _ in seen) == sorted([
        "callable instance", "sub-dependency", "dependency", "sync dependency", "generator dependency",
        "class", "endpoint"])
    endpoint_ws = dict(seen)["endpoint"]
    assert type(endpoint_ws) is WebSocket
    assert all(websocket is endpoint_ws for _, websocket in seen)  # one object per connection


@pytest.mark.parametrize("overrides_first", [True, False], ids=["override-then-install", "install-then-override"])
def test_install_reaches_dependency_overrides(WebSocket: type[Any], overrides_first: bool) -> None:
    async def real_user(websocket: WebSocket) -> str:  # type: ignore[valid-type]
        return f"real:{type(websocket) is WebSocket}"

    async def fake_user(websocket: WebSocket) -> str:  # type: ignore[valid-type]
        return f"fake:{type(websocket) is WebSocket}"

    class FakeUser:
        async def __call__(self, websocket: WebSocket) -> str:  # type: ignore[valid-type]
            return f"instance:{type(websocket) is WebSocket}"

    async def unrelated() -> str:
        return "unrelated"

    async def other() -> str:
        return "other"

    app = FastAPI()
    router = APIRouter()

    @router.websocket("/me")
    async def me(websocket: WebSocket, user: Annotated[str, Depends(real_user)],  # type: ignore[valid-type]
                 note: Annotated[str, Depends(unrelated)]) -> None:
        async with websocket:
            await websocket.send({"user": user, "note": note, "ours": type(websocket) is WebSocket})

    app.include_router(router)
    if overrides_first:
        app.dependency_overrides[real_user] = fake_user
        bws_fastapi.install(app, value_type="json")
    else:
        bws_fastapi.install(app, value_type="json")
        app.dependency_overrides[real_user] = fake_user

    def ask(client: TestClient) -> Any:
        with client.websocket_connect("/me") as ws:
            return ws.receive_json()

    with TestClient(app) as client:
        assert ask(client) == {"user": "fake:True", "note": "unrelated", "ours": True}
        app.dependency_overrides[real_user] = FakeUser()  # changed between connections
        assert ask(client) == {"user": "instance:True", "note": "unrelated", "ours": True}
        del app.dependency_overrides[real_user]
        app.dependency_overrides[unrelated] = other  # an override elsewhere: FastAPI rebuilds every dependant
        assert ask(client) == {"user": "real:True", "note": "other", "ours": True}
        app.dependency_overrides = {real_user: fake_user}  # replaced, not mutated
        assert ask(client) == {"user": "fake:True", "note": "unrelated", "ours": True}
        app.dependency_overrides.clear()
        assert ask(client) == {"user": "real:True", "note": "unrelated", "ours": True}


def test_install_options_are_enforced_on_an_included_route(WebSocket: type[Any]) -> None:
    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:  # type: ignore[valid-type]
        async with websocket:
            async for message in websocket:
                await websocket.send(message)

    app.include_router(router)
    bws_fastapi.install(app, max_size=4)

    with TestClient(app) as client:
        # `async with` closes with 1009, then re-raises; TestClient hands it on when the session ends.
        with pytest.raises(MessageTooBig), client.websocket_connect("/api/echo") as ws:
            ws.send_text("four")
            assert ws.receive_text() == "four"
            ws.send_text("fiver")  # over max_size
            assert ws.receive() == {"type": "websocket.close", "code": 1009, "reason": ""}


def test_install_again_same_options_is_harmless_other_options_raise(WebSocket: type[Any]) -> None:
    app = FastAPI()
    app.add_api_websocket_route("/echo", _echo_class(WebSocket, "echo"))
    bws_fastapi.install(app, value_type="json", max_size=64)
    bws_fastapi.install(app, max_size=64, value_type="json")  # the same options: nothing happens
    with pytest.raises(RuntimeError, match=r"already called on this app with \{'value_type': 'json', 'max_size': 64\}"):
        bws_fastapi.install(app, value_type="json", max_size=4)
    with pytest.raises(RuntimeError, match="already called"):
        bws_fastapi.install(app)
    with TestClient(app) as client, client.websocket_connect("/echo") as ws:
        assert ws.receive_json() == {"route": "echo", "ours": True, "receive_type": "json"}  # the first options


def test_install_refuses_bad_options_and_what_is_not_a_fastapi_app() -> None:
    with pytest.raises(ValueError, match="send_type must be one of"):
        bws_fastapi.install(FastAPI(), send_type="yaml")
    with pytest.raises(TypeError, match="Unknown WebSocket option"):
        bws_fastapi.install(FastAPI(), max_sise=4)
    with pytest.raises(TypeError, match="expects a FastAPI app, got Starlette"):
        bws_fastapi.install(Starlette())  # type: ignore[arg-type]


def test_install_and_the_options_alias_share_one_object(WebSocket: type[Any]) -> None:
    seen: list[Any] = []

    async def listener(websocket: Annotated[Any, Depends(bws_fastapi.provider(WebSocket, value_type="json"))]) -> None:
        seen.append(websocket)

    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, _: Annotated[None, Depends(listener)]) -> None:  # type: ignore[valid-type]
        seen.append(websocket)
        async with websocket:
            await websocket.send({"n": len(seen)})

    bws_fastapi.install(app, value_type="json")
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"n": 2}
    assert seen[0] is seen[1] and type(seen[0]) is WebSocket


def test_an_app_without_install_is_unaffected(WebSocket: type[Any]) -> None:
    # One router, one dependency, one override, in two apps of one process:
    # only the installed app converts (the conversion is per app, at request time).
    async def kind(websocket: WebSocket) -> str:  # type: ignore[valid-type]
        return type(websocket).__module__

    async def kind_override(websocket: WebSocket) -> str:  # type: ignore[valid-type]
        return "override:" + type(websocket).__module__

    router = APIRouter(prefix="/shared")

    @router.websocket("/ws")
    async def shared(websocket: WebSocket, dependency: Annotated[str, Depends(kind)]) -> None:  # type: ignore[valid-type]
        await websocket.accept()
        await websocket.send_json({"endpoint": type(websocket).__module__, "dependency": dependency})
        await websocket.close()

    def page_number(page: int = 1) -> int:
        return page

    http = APIRouter()

    @http.get("/page")
    def page(number: Annotated[int, Depends(page_number)]) -> dict[str, int]:
        return {"page": number}

    installed, plain, mounted = FastAPI(), FastAPI(), FastAPI()
    mounted.include_router(router)
    for app in (installed, plain):
        app.include_router(router)
        app.include_router(http)
        app.dependency_overrides[kind] = kind_override
    installed.mount("/sub", mounted)  # a mounted sub-application needs its own install()
    bws_fastapi.install(installed, value_type="event")

    ours, starlettes = WebSocket.__module__, "starlette.websockets"
    for app, path, expected in [
        (installed, "/shared/ws", {"endpoint": ours, "dependency": "override:" + ours}),
        (plain, "/shared/ws", {"endpoint": starlettes, "dependency": "override:" + starlettes}),
        (installed, "/sub/shared/ws", {"endpoint": starlettes, "dependency": starlettes}),  # no overrides there
    ]:
        with TestClient(app) as client, client.websocket_connect(path) as ws:
            assert ws.receive_json() == expected, path
    for app in (installed, plain):  # HTTP routes: as ever
        with TestClient(app) as client:
            assert client.get("/page?page=3").json() == {"page": 3}
    assert plain.dependency_overrides == {kind: kind_override}  # nothing of the app's was replaced


def test_importing_the_module_changes_nothing_in_fastapi() -> None:
    # Only install() wraps FastAPI's solve_dependencies (a fresh interpreter:
    # this one has seen install() calls).
    code = (
        "import fastapi.dependencies.utils as utils, fastapi.routing as routing\n"
        "before = utils.solve_dependencies, routing.solve_dependencies\n"
        "import bocadillo_ws.fastapi as bws_fastapi\n"
        "assert (utils.solve_dependencies, routing.solve_dependencies) == before\n"
        "from fastapi import FastAPI\n"
        "bws_fastapi.install(FastAPI())\n"
        "assert utils.solve_dependencies is not before[0] and routing.solve_dependencies is not before[1]\n"
        "assert utils.solve_dependencies.__wrapped__ is before[0]\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


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
