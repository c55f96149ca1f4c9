"""In-process framework tests: Starlette's ``TestClient``, Starlette routing and FastAPI.

Every test runs once per backend (``impl``): endpoints are built with
``view_endpoint(view, impl.WebSocket, options)`` (what ``websocket_view``
does for the live class) or wrap the framework's object with
``impl.WebSocket.from_starlette``.

``TestClient`` re-raises an exception that escapes the application, and
depending on timing it can surface from the client's ``receive_*`` before
the close message is read. Tests that look at close codes after a view
re-raises therefore wrap the app in ``Recorder(swallow=True)``, which keeps
the exception for the test to inspect (as a server would log it); one test
runs without it to show the exception does reach the test.
"""

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, WebSocketException
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocketState

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient, WebSocketDenialResponse

from bocadillo_ws import InvalidJSON, UnexpectedMessageType, WebSocketDisconnect
from bocadillo_ws._view import view_endpoint


def compact(value: Any) -> str:
    """The wire text Starlette's ``send_json`` produces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- recording


@dataclass
class Session:
    sent: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    finished: bool = False

    @property
    def closes(self) -> list[dict[str, Any]]:
        return [message for message in self.sent if message["type"] == "websocket.close"]


class Recorder:
    """ASGI middleware: records what each WebSocket session sent and how it ended."""

    def __init__(self, app: Any, *, swallow: bool = False) -> None:
        self.app = app
        self.swallow = swallow
        self.sessions: list[Session] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)  # type: ignore[no-any-return]
        session = Session()
        self.sessions.append(session)

        async def recorded_send(message: dict[str, Any]) -> None:
            session.sent.append(message)
            await send(message)

        try:
            await self.app(scope, receive, recorded_send)
        except Exception as exc:
            session.error = exc
            if not self.swallow:
                raise
        finally:
            session.finished = True

    @property
    def session(self) -> Session:
        assert len(self.sessions) == 1, self.sessions
        assert self.sessions[0].finished
        return self.sessions[0]


# --------------------------------------------------------------------------- views


async def echo(ws: Any) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)


async def raises_after_accept(ws: Any) -> None:
    await ws.accept()
    await ws.receive_text()
    raise RuntimeError("boom")


async def never_accepts(ws: Any) -> None:
    pass


def starlette_app(impl: Any, **extra_routes: Any) -> Starlette:
    def route(path: str, view: Any, **options: Any) -> WebSocketRoute:
        return WebSocketRoute(path, view_endpoint(view, impl.WebSocket, options))

    routes = [
        route("/text", echo, value_type="text"),
        route("/bytes", echo, value_type="bytes"),
        route("/json", echo, value_type="json"),
        route("/raises", raises_after_accept),
        route("/never-accepts", never_accepts),
    ]
    routes += [route(path, view) for path, view in extra_routes.items()]
    return Starlette(routes=routes)


@pytest.fixture
def recorder(impl: Any) -> Recorder:
    return Recorder(starlette_app(impl), swallow=True)


@pytest.fixture
def client(recorder: Recorder) -> TestClient:
    return TestClient(recorder)


# --------------------------------------------------------------------------- Starlette: round trips


def test_text_round_trip(client: TestClient, recorder: Recorder) -> None:
    with client.websocket_connect("/text") as session:
        for payload in ["héllo/wörld 🎉", "", "x" * 10_000, ""]:
            session.send_text(payload)
            assert session.receive_text() == payload
    assert recorder.session.error is None
    assert recorder.session.closes == []  # the client left: nothing sent after its disconnect


def test_bytes_round_trip(client: TestClient, recorder: Recorder) -> None:
    with client.websocket_connect("/bytes") as session:
        for payload in [b"\x00\xff", b"", bytes(range(256))]:
            session.send_bytes(payload)
            assert session.receive_bytes() == payload
    assert recorder.session.error is None


def test_json_round_trip(client: TestClient, recorder: Recorder) -> None:
    value = {"héllo": "wörld/🎉", "n": [1, -2, None, True, {"k": []}], "s": 'q"\\'}
    with client.websocket_connect("/json") as session:
        session.send_json(value)
        assert session.receive_text() == compact(value)  # the wire text itself
        session.send_json(value, mode="binary")  # a binary frame: receive_json accepts it
        assert session.receive_json() == value
        session.send_text(json.dumps(value, indent=2))  # loose input, compact output
        assert session.receive_text() == compact(value)
    assert recorder.session.error is None


# --------------------------------------------------------------------------- Starlette: close codes


@pytest.mark.parametrize(
    ("path", "frame", "code", "error"),
    [
        pytest.param("/text", b"binary", 1003, UnexpectedMessageType, id="binary-to-text-1003"),
        pytest.param("/bytes", "text", 1003, UnexpectedMessageType, id="text-to-bytes-1003"),
        pytest.param("/json", "{not json", 1007, InvalidJSON, id="invalid-json-1007"),
        pytest.param("/json", b"\xff\xfe[]", 1007, InvalidJSON, id="invalid-utf8-1007"),
        pytest.param("/raises", "go", 1011, RuntimeError, id="runtime-error-1011"),
    ],
)
def test_close_codes(
    client: TestClient,
    recorder: Recorder,
    path: str,
    frame: str | bytes,
    code: int,
    error: type[BaseException],
) -> None:
    with client.websocket_connect(path) as session:
        if isinstance(frame, bytes):
            session.send_bytes(frame)
        else:
            session.send_text(frame)
        with pytest.raises(WebSocketDisconnect) as info:
            session.receive_text()
    assert info.value.code == code
    assert info.value.reason == ""
    # Closed with the code, once, then re-raised (close, then re-raise).
    assert [close["code"] for close in recorder.session.closes] == [code]
    assert recorder.session.sent[-1]["type"] == "websocket.close"
    assert isinstance(recorder.session.error, error)


def test_view_exception_reaches_testclient(impl: Any) -> None:
    """Without a recorder that swallows it, the re-raised exception reaches the test."""
    client = TestClient(starlette_app(impl))
    with pytest.raises(UnexpectedMessageType, match="Expected a text frame, but received a binary frame"):
        with client.websocket_connect("/text") as session:
            session.send_bytes(b"binary")
            session.receive_text()


def test_invalid_json_is_a_json_decode_error(impl: Any) -> None:
    """Handlers written for Starlette (``except json.JSONDecodeError``) keep working."""
    caught: list[BaseException] = []

    async def view(ws: Any) -> None:
        await ws.accept()
        try:
            await ws.receive_json()
        except json.JSONDecodeError as exc:
            caught.append(exc)
            await ws.send_text("handled")

    client = TestClient(starlette_app(impl, **{"/handled": view}))
    with client.websocket_connect("/handled") as session:
        session.send_text("[1,")
        assert session.receive_text() == "handled"
        with pytest.raises(WebSocketDisconnect) as info:
            session.receive_text()
    assert info.value.code == 1000  # the view returned normally after handling it
    assert len(caught) == 1 and isinstance(caught[0], InvalidJSON)


# --------------------------------------------------------------------------- Starlette: connection attributes


def test_connection_attributes(impl: Any) -> None:
    seen: dict[str, Any] = {}

    async def view(ws: Any) -> None:
        seen.update(
            name=ws.query_params["name"],
            query=dict(ws.query_params),
            path_params=dict(ws.path_params),
            token=ws.headers["x-token"],
            cookies=dict(ws.cookies),
            url=str(ws.url),
            url_path=ws.url.path,
            client=ws.client,
            path=ws["path"],
            subprotocols=ws.scope["subprotocols"],
            app_is_starlette=isinstance(ws.app, Starlette),
            states=(ws.client_state, ws.application_state),
        )
        await ws.accept(subprotocol="chat")
        seen["accepted_states"] = (ws.client_state, ws.application_state)
        await ws.send_text("ok")

    app = Starlette(routes=[WebSocketRoute("/rooms/{room}", view_endpoint(view, impl.WebSocket, {}))])
    client = TestClient(app)
    with client.websocket_connect(
        "/rooms/lobby?name=ana&x=%C3%A9",
        subprotocols=["chat", "superchat"],
        headers={"x-token": "secret", "cookie": "session=abc; theme=dark"},
    ) as session:
        assert session.accepted_subprotocol == "chat"
        assert session.receive_text() == "ok"

    assert seen == {
        "name": "ana",
        "query": {"name": "ana", "x": "é"},
        "path_params": {"room": "lobby"},
        "token": "secret",
        "cookies": {"session": "abc", "theme": "dark"},
        "url": "ws://testserver/rooms/lobby?name=ana&x=%C3%A9",
        "url_path": "/rooms/lobby",
        "client": ("testclient", 50000),
        "path": "/rooms/lobby",
        "subprotocols": ["chat", "superchat"],
        "app_is_starlette": True,
        "states": (WebSocketState.CONNECTING, WebSocketState.CONNECTING),
        "accepted_states": (WebSocketState.CONNECTED, WebSocketState.CONNECTED),
    }


# --------------------------------------------------------------------------- Starlette: denial


def test_denial_response(impl: Any) -> None:
    states: list[WebSocketState] = []

    async def view(ws: Any) -> None:
        await ws.send_denial_response(PlainTextResponse("nope", status_code=403))
        states.append(ws.application_state)

    recorder = Recorder(starlette_app(impl, **{"/deny": view}))
    client = TestClient(recorder)
    with pytest.raises(WebSocketDenialResponse) as info:
        with client.websocket_connect("/deny"):
            pass  # pragma: no cover - the handshake must fail
    assert info.value.status_code == 403
    assert info.value.text == "nope"
    assert states == [WebSocketState.DISCONNECTED]
    # The response, and no close on top of it when the view returns.
    assert [message["type"] for message in recorder.session.sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert recorder.session.error is None


def test_view_that_never_accepts(client: TestClient, recorder: Recorder) -> None:
    """The endpoint closes (1000) before accepting; TestClient's connect raises WebSocketDisconnect(1000).

    (A real server answers that close with an HTTP 403; see test_server.py.)
    """
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/never-accepts"):
            pass  # pragma: no cover - the handshake must fail
    assert not isinstance(info.value, WebSocketDenialResponse)
    assert info.value.code == 1000
    assert [message["type"] for message in recorder.session.sent] == ["websocket.close"]
    assert recorder.session.error is None


# --------------------------------------------------------------------------- FastAPI


def test_fastapi_from_starlette_json_echo(impl: Any) -> None:
    app = FastAPI()
    seen: list[Any] = []

    @app.websocket("/ws/{room}")
    async def endpoint(websocket: FastAPIWebSocket, room: str) -> None:
        ws = impl.WebSocket.from_starlette(websocket, value_type="json")
        seen.append((type(ws), ws.path_params, ws.receive_type, ws.send_type))
        async with ws:
            async for message in ws:
                await ws.send({"room": room, "echo": message})

    recorder = Recorder(app)
    client = TestClient(recorder)
    with client.websocket_connect("/ws/lobby") as session:
        for value in [{"a": "é/1"}, [], "", None, 2**70]:
            session.send_json(value)
            assert session.receive_text() == compact({"room": "lobby", "echo": value})
    assert seen == [(impl.WebSocket, {"room": "lobby"}, "json", "json")]
    assert recorder.session.error is None  # the disconnect was silenced by `async with`
    assert recorder.session.closes == []


@pytest.mark.parametrize("register", ["router.add_websocket_route", "websocket_route"])
def test_fastapi_add_websocket_route(impl: Any, register: str) -> None:
    # Starlette 1.x dropped the app-level ``add_websocket_route`` (FastAPI
    # inherits that): the router's method and the ``websocket_route``
    # decorator are what remain.
    app = FastAPI()
    endpoint = view_endpoint(echo, impl.WebSocket, {"value_type": "json"})
    if register == "router.add_websocket_route":
        app.router.add_websocket_route("/view", endpoint)
    else:
        app.websocket_route("/view")(endpoint)
    recorder = Recorder(app, swallow=True)
    client = TestClient(recorder)
    with client.websocket_connect("/view") as session:
        session.send_json({"x": ["ü", 1]})
        assert session.receive_json() == {"x": ["ü", 1]}
        session.send_text("{oops")
        with pytest.raises(WebSocketDisconnect) as info:
            session.receive_text()
    assert info.value.code == 1007
    assert isinstance(recorder.session.error, InvalidJSON)  # closed, then re-raised


def test_fastapi_websocket_decorator_takes_a_view_endpoint(impl: Any) -> None:
    """``@app.websocket`` introspects the endpoint's signature: the view endpoint's must pass."""
    app = FastAPI()
    app.websocket("/deco")(view_endpoint(echo, impl.WebSocket, {"value_type": "text"}))
    client = TestClient(app)
    with client.websocket_connect("/deco") as session:
        session.send_text("hi/ü")
        assert session.receive_text() == "hi/ü"


def test_fastapi_sees_states_written_back(impl: Any) -> None:
    app = FastAPI()
    observed: list[Any] = []

    @app.websocket("/close")
    async def endpoint(websocket: FastAPIWebSocket) -> None:
        ws = impl.WebSocket.from_starlette(websocket)
        await ws.accept()
        observed.append((websocket.client_state, websocket.application_state))
        await ws.close(4000, "done")
        observed.append((websocket.client_state, websocket.application_state))
        try:  # Starlette's own state checks, on the original object, know it is closed
            await websocket.send_text("too late")
        except RuntimeError as exc:
            observed.append(str(exc))

    recorder = Recorder(app)
    client = TestClient(recorder)
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/close") as session:
            session.receive_text()
    assert (info.value.code, info.value.reason) == (4000, "done")
    assert observed == [
        (WebSocketState.CONNECTED, WebSocketState.CONNECTED),
        (WebSocketState.CONNECTED, WebSocketState.DISCONNECTED),
        'Cannot call "send" once a close message has been sent.',
    ]
    assert recorder.session.error is None
    assert len(recorder.session.closes) == 1


def test_fastapi_client_disconnect_written_back(impl: Any) -> None:
    app = FastAPI()
    observed: list[Any] = []

    @app.websocket("/leave")
    async def endpoint(websocket: FastAPIWebSocket) -> None:
        await websocket.accept()  # the framework's object accepts ...
        ws = impl.WebSocket.from_starlette(websocket)  # ... ours takes over, already connected
        observed.append(ws.application_state)
        await ws.send_text("welcome")
        try:
            await ws.receive_text()
        except WebSocketDisconnect as exc:
            observed.append(exc.code)
        observed.append(websocket.client_state)

    recorder = Recorder(app)
    client = TestClient(recorder)
    with client.websocket_connect("/leave") as session:
        assert session.receive_text() == "welcome"
        session.close(1001)
    assert observed == [WebSocketState.CONNECTED, 1001, WebSocketState.DISCONNECTED]
    assert recorder.session.error is None
    assert recorder.session.closes == []


@pytest.mark.parametrize("accept_first", [True, False], ids=["after-accept", "before-accept"])
def test_fastapi_websocket_exception_after_wrapping(impl: Any, accept_first: bool) -> None:
    app = FastAPI()

    @app.websocket("/policy")
    async def endpoint(websocket: FastAPIWebSocket) -> None:
        ws = impl.WebSocket.from_starlette(websocket, value_type="text")
        if accept_first:
            await ws.accept()
            await ws.receive()
        raise WebSocketException(code=1008, reason="policy")

    recorder = Recorder(app)
    client = TestClient(recorder)
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/policy") as session:
            session.send_text("hello")
            session.receive_text()
    assert (info.value.code, info.value.reason) == (1008, "policy")
    assert not isinstance(info.value, WebSocketDenialResponse)
    assert recorder.session.error is None  # handled by Starlette's exception handler
    assert [close["code"] for close in recorder.session.closes] == [1008]


def test_websocket_exception_inside_a_view(impl: Any) -> None:
    """A ``WebSocketException`` escaping a ``websocket_view`` closes with its code and reason.

    That is what Starlette's own handler does with it; the view handles it
    fully (re-raising would make Starlette's handler close a second time).
    """

    async def view(ws: Any) -> None:
        await ws.accept()
        await ws.receive_text()
        raise WebSocketException(code=1008, reason="policy")

    recorder = Recorder(starlette_app(impl, **{"/policy": view}))
    client = TestClient(recorder)
    with client.websocket_connect("/policy") as session:
        session.send_text("hello")
        with pytest.raises(WebSocketDisconnect) as info:
            session.receive_text()
    assert (info.value.code, info.value.reason) == (1008, "policy")
    assert [(close["code"], close.get("reason")) for close in recorder.session.closes] == [(1008, "policy")]
    assert recorder.session.error is None
