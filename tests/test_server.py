"""End to end through a real server: uvicorn on loopback, a real ``websockets`` client.

Every test runs once per backend (``impl``: ``c`` and ``py``) and once per
uvicorn WebSocket implementation (``websockets-sansio`` and the legacy
``websockets`` one). One server per (backend, implementation) serves all the
routes; each connection carries a ``token`` query parameter so the test can
find what the server recorded for it.

Server-side recording is done by ``Recorder``, an ASGI middleware around the
whole app: it notes every event the application received and every message
it sent, in order, and how the application call ended.

Views that end with an exception close, then re-raise (contract §6). The
recorder keeps that exception for the test and does not pass it on to
uvicorn: after the handshake uvicorn only logs it and closes the transport,
which it does after a normal return too, so the wire is the same. Letting
uvicorn log it would format a traceback in the server thread, and Python
3.11's traceback module calls ``ast.parse`` (for its ``^^^`` carets). The ast
module's recursion counter is interpreter-wide, so that can race with
pytest's own ``ast.parse`` of a failing test's source in the main thread and
crash the whole run with ``INTERNALERROR> SystemError: AST constructor
recursion depth mismatch`` (seen on CPython 3.11.7; see python/cpython#106905
and pytest-dev/pytest#10763).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, InvalidStatus

import bocadillo_ws
from bocadillo_ws import InvalidJSON, UnexpectedMessageType, WebSocketDisconnect
from bocadillo_ws._view import view_endpoint
from servers import NO_PROXY, serve

pytestmark = [
    pytest.mark.anyio,
    # uvicorn's legacy ``ws="websockets"`` implementation is deprecated, and so
    # is the websockets.legacy API it runs on: known noise, not our warnings.
    pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:remove second argument of ws_handler:DeprecationWarning"),
]

TIMEOUT = 10.0  # any single wait; a whole test is far below it when all is well
UVICORN_WS = ["websockets-sansio", "websockets"]


def compact(value: Any) -> str:
    """The wire text Starlette's ``send_json`` produces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- recording


@dataclass
class Session:
    """What one connection's application call did, as seen at the ASGI boundary."""

    timeline: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # ("recv"|"send", event)
    error: BaseException | None = None
    notes: list[Any] = field(default_factory=list)  # written by views
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [event for direction, event in self.timeline if direction == "send"]

    @property
    def closes(self) -> list[dict[str, Any]]:
        return [event for event in self.sent if event["type"] == "websocket.close"]


class Recorder:
    """ASGI middleware recording each WebSocket session, keyed by its ``token`` query parameter."""

    def __init__(self) -> None:
        self.app: Any = None
        self.sessions: dict[str, Session] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)  # type: ignore[no-any-return]
        token = parse_qs(scope["query_string"].decode("latin-1")).get("token", [scope["path"]])[0]
        session = self.sessions[token] = Session()
        scope.setdefault("state", {})["session"] = session

        async def recorded_receive() -> dict[str, Any]:
            event = await receive()
            session.timeline.append(("recv", event))
            return event  # type: ignore[no-any-return]

        async def recorded_send(message: dict[str, Any]) -> None:
            session.timeline.append(("send", message))
            await send(message)

        try:
            await self.app(scope, recorded_receive, recorded_send)
        except Exception as exc:
            # Kept for the test, not re-raised: see the module docstring.
            session.error = exc
        finally:
            session.done.set()

    async def finished(self, token: str) -> Session:
        """The session for ``token`` once its application call has ended (bounded wait)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            session = self.sessions.get(token)
            if session is not None and session.done.is_set():
                return session
            if loop.time() > deadline:
                raise AssertionError(f"the server session {token!r} did not finish within {TIMEOUT}s")
            await asyncio.sleep(0.005)


def note(ws: Any, value: Any) -> None:
    """Record ``value`` on this connection's server-side session."""
    ws.scope["state"]["session"].notes.append(value)


# --------------------------------------------------------------------------- views


async def echo(ws: Any) -> None:  # receive() and send() follow value_type
    await ws.accept()
    async for message in ws:
        await ws.send(message)


async def json_modes(ws: Any) -> None:
    await ws.accept()
    # receive_json accepts a binary frame although mode says "text" ...
    await ws.send_json(await ws.receive_json(mode="text"), mode="binary")
    # ... and a text frame although mode says "binary".
    await ws.send_json(await ws.receive_json(mode="binary"))


async def raises_after_accept(ws: Any) -> None:
    await ws.accept()
    await ws.receive_text()
    raise RuntimeError("boom")


async def returns_normally(ws: Any) -> None:
    await ws.accept()
    await ws.send_text("bye")


async def records_disconnect(ws: Any) -> None:
    await ws.accept()
    try:
        async for message in ws:
            await ws.send(message)
    except WebSocketDisconnect as exc:
        note(ws, ("disconnect", exc.code, exc.reason))
        raise  # the endpoint (catch_disconnect=True) silences it and sends nothing
    note(ws, "loop ended without a disconnect")  # pragma: no cover - a bug


async def chat_subprotocol(ws: Any) -> None:
    note(ws, list(ws.scope["subprotocols"]))
    await ws.accept(subprotocol="chat")
    await ws.send_text(ws.scope["subprotocols"][0])
    await ws.receive_text()  # wait for the client's word before closing


async def never_accepts(ws: Any) -> None:
    note(ws, "returned without accepting")


async def denies(ws: Any) -> None:
    await ws.send_denial_response(PlainTextResponse("nope", status_code=403))
    note(ws, ws.application_state)


ROUTES: list[tuple[str, Any, dict[str, Any]]] = [
    ("/json", echo, {"value_type": "json"}),
    ("/json-ujson", echo, {"value_type": "json", "json_codec": "ujson"}),
    ("/json-orjson", echo, {"value_type": "json", "json_codec": "orjson"}),
    ("/json-json", echo, {"value_type": "json", "json_codec": "json"}),
    ("/text", echo, {"value_type": "text"}),
    ("/bytes", echo, {"value_type": "bytes"}),
    ("/json-modes", json_modes, {"value_type": "json"}),
    ("/raises", raises_after_accept, {}),
    ("/returns", returns_normally, {}),
    ("/disconnect", records_disconnect, {"value_type": "text"}),
    ("/subprotocol", chat_subprotocol, {}),
    ("/never-accepts", never_accepts, {}),
    ("/denies", denies, {}),
]


def build_app(websocket_class: type[Any]) -> Recorder:
    recorder = Recorder()
    recorder.app = Starlette(
        routes=[
            WebSocketRoute(path, view_endpoint(view, websocket_class, dict(options)))
            for path, view, options in ROUTES
        ]
    )
    return recorder


# --------------------------------------------------------------------------- fixtures


@dataclass
class Server:
    base: str
    recorder: Recorder
    uvicorn_ws: str

    def url(self, path: str) -> tuple[str, str]:
        """A fresh token and the URL that carries it."""
        token = uuid.uuid4().hex
        return token, f"{self.base}{path}?token={token}"


@pytest.fixture(scope="module", params=UVICORN_WS)
def uvicorn_ws(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def server(impl: Any, uvicorn_ws: str) -> Iterator[Server]:
    recorder = build_app(impl.WebSocket)
    with serve(recorder, ws=uvicorn_ws) as base:
        yield Server(base, recorder, uvicorn_ws)


@asynccontextmanager
async def client_for(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """A real client on loopback: no proxy, no keepalive pings, bounded handshakes."""
    async with connect(
        url,
        **NO_PROXY,
        ping_interval=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        **kwargs,
    ) as client:
        yield client


async def recv(client: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(client.recv(), TIMEOUT)


async def close_frame_received(client: ClientConnection) -> tuple[int, str, type[ConnectionClosed]]:
    """Receive until the server closes; the code and reason of the server's close frame."""
    with pytest.raises(ConnectionClosed) as info:
        await recv(client)
    await asyncio.wait_for(client.wait_closed(), TIMEOUT)
    assert info.value.rcvd is not None, f"no close frame from the server: {info.value}"
    assert client.close_code == info.value.rcvd.code
    return info.value.rcvd.code, info.value.rcvd.reason, type(info.value)


# --------------------------------------------------------------------------- JSON


def json_messages(count: int) -> list[dict[str, Any]]:
    return [
        {
            "seq": i,
            "payload": f"héllo/wörld/{i} — 日本語 🎉 \"quoted\" back\\slash\ttab\nline",
            "path": f"/rooms/{i % 7}/ü",
            "extra": [i, -i, i % 2 == 0, None, {"k/ë": "✓"}],
        }
        for i in range(count)
    ]


async def test_json_echo_3000_pipelined(server: Server) -> None:
    """3000 JSON messages in flight at once: all echoed, in order, equal, in compact wire text."""
    messages = json_messages(3000)
    token, url = server.url("/json")
    async with client_for(url) as client:

        async def send_all() -> None:
            for message in messages:
                # The client's own encoding is loose (spaces, \u escapes): the
                # compact echo must come from the server's serialiser.
                await client.send(json.dumps(message))

        async def receive_all() -> list[str | bytes]:
            return [await client.recv() for _ in messages]

        _, raw = await asyncio.wait_for(asyncio.gather(send_all(), receive_all()), TIMEOUT)

    assert all(isinstance(text, str) for text in raw)  # text frames
    assert [json.loads(text) for text in raw] == messages
    # Compact, UTF-8 as is, "/" unescaped: exactly what Starlette's send_json sends.
    assert raw == [compact(message) for message in messages]
    assert raw[5].startswith('{"seq":5,"payload":"héllo/wörld/5 — 日本語 🎉 \\"quoted\\" back\\\\slash\\ttab\\nline",')
    assert raw[5].endswith(',"path":"/rooms/5/ü","extra":[5,-5,false,null,{"k/ë":"✓"}]}')

    session = await server.recorder.finished(token)
    assert session.error is None
    assert session.closes == []  # the client closed: the server sent no close of its own


async def test_json_echo_windowed(server: Server) -> None:
    """The same echo with at most 200 messages in flight, client sending binary frames."""
    messages = json_messages(3000)
    window = 200
    received: list[Any] = []
    _, url = server.url("/json")
    async with client_for(url) as client:
        for start in range(0, len(messages), window):
            chunk = messages[start : start + window]
            for message in chunk:
                await client.send(json.dumps(message, ensure_ascii=False).encode("utf-8"))
            for _ in chunk:
                frame = await recv(client)
                assert isinstance(frame, str)  # receive_json read a binary frame; send_json answers text
                received.append(json.loads(frame))
    assert received == messages


JSON_CODECS = [
    pytest.param("ujson", id="ujson"),
    pytest.param(
        "orjson",
        id="orjson",
        marks=pytest.mark.skipif(importlib.util.find_spec("orjson") is None, reason="orjson is not installed"),
    ),
    pytest.param("json", id="stdlib"),
]


@pytest.mark.parametrize("codec", JSON_CODECS)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param({}, id="empty-object"),
        pytest.param([], id="empty-array"),
        pytest.param("", id="empty-string"),
        pytest.param(0, id="zero"),
        pytest.param(2**63 - 1, id="int64-max"),
        pytest.param({"nested": {"deeper": [[[]]], "ünï/cödé": "\u2028\u2029\x7f"}}, id="nested-unicode"),
        pytest.param([True, False, None, 1.5, -0.0, 1e300, 0.1, 1e16, 1e22, 12345678901234567.0], id="floats"),
        # ujson prints 1e-5 and orjson 0.00001 where json (Starlette) prints 1e-05.
        pytest.param([1e-05, 1.5e-07, 0.0001, 5e-324, 2.5e-300, 123.456e-10], id="small-floats"),
    ],
)
async def test_json_wire_text_is_starlettes(server: Server, value: Any, codec: str) -> None:
    """Whatever the codec, the text frame is the one Starlette's ``send_json`` sends."""
    _, url = server.url(f"/json-{codec}")
    async with client_for(url) as client:
        await client.send(json.dumps(value))
        assert await recv(client) == compact(value)


@pytest.mark.parametrize("codec", JSON_CODECS)
async def test_big_ints_survive_a_round_trip(server: Server, codec: str) -> None:
    """Integers beyond 64 bits, received and sent back: exact, as with Starlette's json."""
    value = [2**64, -(2**63) - 1, -(2**70), 10**40]
    _, url = server.url(f"/json-{codec}")
    async with client_for(url) as client:
        await client.send(json.dumps(value))
        assert await recv(client) == compact(value)


async def test_receive_json_takes_any_frame_and_send_json_binary_sends_bytes(server: Server) -> None:
    value = {"héllo": "wörld/🎉", "n": [1, 2]}
    token, url = server.url("/json-modes")
    async with client_for(url) as client:
        await client.send(compact(value).encode("utf-8"))  # binary frame, mode="text" on the server
        reply = await recv(client)
        assert isinstance(reply, bytes)
        assert reply == compact(value).encode("utf-8")

        await client.send(compact(value))  # text frame, mode="binary" on the server
        reply = await recv(client)
        assert isinstance(reply, str)
        assert reply == compact(value)

        code, _, _ = await close_frame_received(client)
    assert code == 1000
    session = await server.recorder.finished(token)
    assert session.error is None
    frames = [event for event in session.sent if event["type"] == "websocket.send"]
    assert [set(frame) - {"type"} for frame in frames] == [{"bytes"}, {"text"}]


# --------------------------------------------------------------------------- text and bytes


async def test_text_echo(server: Server) -> None:
    payloads = ["", "a", "héllo/wörld 🎉", "", " spaced ", "x" * 70_000, "\x00\u2028"]
    _, url = server.url("/text")
    async with client_for(url) as client:
        for payload in payloads:
            await client.send(payload)
            assert await recv(client) == payload
        for payload in payloads:  # pipelined too
            await client.send(payload)
        assert [await recv(client) for _ in payloads] == payloads


async def test_bytes_echo(server: Server) -> None:
    payloads = [b"", b"\x00", bytes(range(256)), b"", b"\xff\xfe not utf-8", b"y" * 70_000]
    _, url = server.url("/bytes")
    async with client_for(url) as client:
        for payload in payloads:
            await client.send(payload)
            reply = await recv(client)
            assert isinstance(reply, bytes)
            assert reply == payload
        for payload in payloads:
            await client.send(payload)
        assert [await recv(client) for _ in payloads] == payloads


# --------------------------------------------------------------------------- close codes


@pytest.mark.parametrize(
    ("path", "frame", "code", "error"),
    [
        pytest.param("/text", b"binary", 1003, UnexpectedMessageType, id="binary-to-text-view-1003"),
        pytest.param("/bytes", "text", 1003, UnexpectedMessageType, id="text-to-bytes-view-1003"),
        pytest.param("/json", "{not json", 1007, InvalidJSON, id="invalid-json-text-1007"),
        pytest.param("/json", b"\xff\xfe{}", 1007, InvalidJSON, id="invalid-utf8-binary-1007"),
        pytest.param("/json", b'{"a": "\xed\xa0\x80"}', 1007, InvalidJSON, id="utf8-surrogate-binary-1007"),
        pytest.param("/raises", "go", 1011, RuntimeError, id="runtime-error-1011"),
    ],
)
async def test_close_code_seen_by_client(
    server: Server, path: str, frame: str | bytes, code: int, error: type[BaseException]
) -> None:
    token, url = server.url(path)
    async with client_for(url) as client:
        await client.send(frame)
        received_code, reason, closed = await close_frame_received(client)
    assert received_code == code
    assert reason == ""
    assert closed is ConnectionClosedError

    session = await server.recorder.finished(token)
    # The view closed with the code itself, once, and then re-raised.
    assert [close["code"] for close in session.closes] == [code]
    assert session.sent[-1]["type"] == "websocket.close"
    assert isinstance(session.error, error)


async def test_view_returning_normally_closes_1000(server: Server) -> None:
    token, url = server.url("/returns")
    async with client_for(url) as client:
        assert await recv(client) == "bye"
        code, reason, closed = await close_frame_received(client)
    assert (code, reason, closed) == (1000, "", ConnectionClosedOK)
    session = await server.recorder.finished(token)
    assert session.error is None
    assert [close["code"] for close in session.closes] == [1000]


async def test_client_disconnect_ends_view_and_nothing_is_sent(server: Server) -> None:
    token, url = server.url("/disconnect")
    async with client_for(url) as client:
        await client.send("hello")
        assert await recv(client) == "hello"
        await asyncio.wait_for(client.close(code=4001, reason="bye"), TIMEOUT)
    assert client.close_code == 4001  # the server's protocol echoed our close frame

    session = await server.recorder.finished(token)
    assert session.notes == [("disconnect", 4001, "bye")]
    assert session.error is None  # WebSocketDisconnect silenced by the endpoint
    directions = [direction for direction, _ in session.timeline]
    events = [event for _, event in session.timeline]
    disconnect_at = next(i for i, event in enumerate(events) if event["type"] == "websocket.disconnect")
    assert "send" not in directions[disconnect_at:], session.timeline[disconnect_at:]
    assert session.closes == []


async def test_client_vanishing_mid_conversation_ends_view(server: Server) -> None:
    """An abrupt TCP close (no close frame): the view still ends through the disconnect path."""
    token, url = server.url("/disconnect")
    async with client_for(url) as client:
        await client.send("ping")
        assert await recv(client) == "ping"
        client.transport.abort()
    session = await server.recorder.finished(token)
    assert session.error is None
    assert len(session.notes) == 1
    kind, code, _ = session.notes[0]
    assert kind == "disconnect"
    # uvicorn reports a lost connection differently per implementation:
    # websockets-sansio says 1005 (no status), the legacy one 1006 (abnormal).
    assert code == {"websockets-sansio": 1005, "websockets": 1006}[server.uvicorn_ws]
    assert session.closes == []


# --------------------------------------------------------------------------- handshake


async def test_subprotocol_accepted(server: Server) -> None:
    token, url = server.url("/subprotocol")
    async with client_for(url, subprotocols=["chat"]) as client:
        assert client.subprotocol == "chat"
        assert await recv(client) == "chat"
        await client.send("done")
        code, _, _ = await close_frame_received(client)
    assert code == 1000
    session = await server.recorder.finished(token)
    assert session.notes == [["chat"]]
    accept = session.sent[0]
    assert accept["type"] == "websocket.accept" and accept["subprotocol"] == "chat"


async def test_view_that_never_accepts_is_rejected_with_403(server: Server) -> None:
    """Close before accept: the ASGI spec (and uvicorn) turn it into an HTTP 403."""
    token, url = server.url("/never-accepts")
    with pytest.raises(InvalidStatus) as info:
        async with client_for(url):
            pass  # pragma: no cover - the handshake must fail
    assert info.value.response.status_code == 403
    session = await server.recorder.finished(token)
    assert session.notes == ["returned without accepting"]
    assert session.error is None
    assert [event["type"] for event in session.sent] == ["websocket.close"]
    assert session.sent[0]["code"] == 1000


async def test_denial_response_reaches_client(server: Server) -> None:
    token, url = server.url("/denies")
    with pytest.raises(InvalidStatus) as info:
        async with client_for(url):
            pass  # pragma: no cover - the handshake must fail
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"nope"
    session = await server.recorder.finished(token)
    assert session.error is None
    assert session.notes == [bocadillo_ws.WebSocketState.DISCONNECTED]
    # The response and nothing after it: no close on top of a denial.
    assert [event["type"] for event in session.sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
