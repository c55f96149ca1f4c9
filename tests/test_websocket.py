"""docs/contract.md §3, §4 and §6, row by row, against both backends (in-memory transport)."""

from __future__ import annotations

import gc
import json
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket as StarletteWebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

import bocadillo_ws
from asgi_helpers import SCOPE, SHAPES, Transport, binary, connect, disconnect, open_socket, text

pytestmark = pytest.mark.anyio


async def accepted(WebSocket: type[Any], *events: dict[str, Any], **options: Any) -> tuple[Any, Transport]:
    ws, transport = open_socket(WebSocket, *events, **options)
    await ws.accept()
    return ws, transport


# --------------------------------------------------------------------------- §2 names


def test_public_names() -> None:
    assert bocadillo_ws.WebSocketDisconnect is WebSocketDisconnect
    assert issubclass(bocadillo_ws.MessageError, ValueError)
    assert issubclass(bocadillo_ws.UnexpectedMessageType, bocadillo_ws.MessageError)
    assert issubclass(bocadillo_ws.InvalidJSON, bocadillo_ws.MessageError)
    assert issubclass(bocadillo_ws.InvalidJSON, json.JSONDecodeError)
    assert bocadillo_ws.UnexpectedMessageType.close_code == 1003
    assert bocadillo_ws.InvalidJSON.close_code == 1007
    assert bocadillo_ws.BACKEND in ("cython", "python")


# --------------------------------------------------------------------------- §3 constructing


def test_defaults(WebSocket: type[Any]) -> None:
    ws, _ = open_socket(WebSocket)
    assert (ws.receive_type, ws.send_type, ws.catch_disconnect) == ("text", "text", True)
    assert ws.json_codec == "ujson"
    assert ws.client_state is WebSocketState.CONNECTING
    assert ws.application_state is WebSocketState.CONNECTING


@pytest.mark.parametrize("kind", ["text", "bytes", "json", "event"])
def test_value_type_overrides_both(WebSocket: type[Any], kind: str) -> None:
    ws, _ = open_socket(WebSocket, value_type=kind, receive_type="bytes", send_type="json")
    assert (ws.receive_type, ws.send_type) == (kind, kind)


def test_receive_and_send_types_apart(WebSocket: type[Any]) -> None:
    ws, _ = open_socket(WebSocket, receive_type="json", send_type="bytes", catch_disconnect=False)
    assert (ws.receive_type, ws.send_type, ws.catch_disconnect) == ("json", "bytes", False)


@pytest.mark.parametrize("parameter", ["value_type", "receive_type", "send_type"])
@pytest.mark.parametrize("bad", ["xml", "TEXT", 1, b"text"])
def test_unknown_type_is_a_value_error_naming_the_allowed_ones(
    WebSocket: type[Any], parameter: str, bad: object
) -> None:
    with pytest.raises(ValueError, match=f"{parameter} must be one of 'text', 'bytes', 'json', 'event'"):
        open_socket(WebSocket, **{parameter: bad})


def test_keyword_asgi_arguments(WebSocket: type[Any]) -> None:
    transport = Transport()
    ws = WebSocket(scope=dict(SCOPE), receive=transport.receive, send=transport.send, value_type="json")
    assert ws.scope["path"] == "/chat/lobby"
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'send'"):
        WebSocket(dict(SCOPE), transport.receive)
    with pytest.raises(TypeError, match="unexpected keyword argument 'sned'"):
        WebSocket(dict(SCOPE), transport.receive, sned=transport.send)
    with pytest.raises(TypeError, match="missing 3 required positional arguments"):
        WebSocket()
    with pytest.raises(TypeError, match="takes 4 positional arguments but 5 were given"):
        WebSocket(dict(SCOPE), transport.receive, transport.send, "json")  # options are keyword-only


def test_http_scope_is_refused_like_starlette(WebSocket: type[Any]) -> None:
    transport = Transport()
    with pytest.raises(AssertionError):
        WebSocket({**SCOPE, "type": "http"}, transport.receive, transport.send)


def test_is_a_starlette_websocket(WebSocket: type[Any]) -> None:
    # isinstance checks in Starlette (@requires), FastAPI (dependency injection) and user code.
    assert issubclass(WebSocket, StarletteWebSocket) and issubclass(WebSocket, HTTPConnection)
    transport = Transport()
    assert isinstance(WebSocket(dict(SCOPE), transport.receive, transport.send), StarletteWebSocket)
    # Our methods come first: Starlette's are reached only through _starlette_states.
    for name in ("receive", "send", "accept", "close", "receive_text", "send_json", "send_denial_response"):
        assert getattr(WebSocket, name) is not getattr(StarletteWebSocket, name), name


@pytest.mark.parametrize(
    "attribute",
    ["url", "base_url", "headers", "query_params", "path_params", "cookies", "client", "scope"],
)
def test_connection_attributes_mean_what_starlette_says(WebSocket: type[Any], attribute: str) -> None:
    transport = Transport()
    ours = WebSocket(dict(SCOPE), transport.receive, transport.send)
    theirs = StarletteWebSocket(dict(SCOPE), transport.receive, transport.send)
    assert getattr(ours, attribute) == getattr(theirs, attribute)


def test_mapping_state_and_auth_attributes(WebSocket: type[Any]) -> None:
    scope = {**SCOPE, "state": {"user_id": 7}, "auth": "token", "user": "ana", "app": object()}
    transport = Transport()
    ws = WebSocket(scope, transport.receive, transport.send)
    assert ws["path"] == "/chat/lobby" and "headers" in ws and len(ws) == len(scope)
    assert ws.state.user_id == 7
    assert (ws.auth, ws.user, ws.app) == ("token", "ana", scope["app"])
    with pytest.raises(AssertionError, match="SessionMiddleware"):
        ws.session  # noqa: B018 - same error as Starlette without the middleware


# --------------------------------------------------------------------------- §4 accept / close


async def test_accept_waits_for_connect_and_sends_accept(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket)
    await ws.accept(subprotocol="chat", headers=[(b"x-room", b"lobby")])
    assert transport.inbox == []
    assert transport.sent == [
        {"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-room", b"lobby")]}
    ]
    assert ws.client_state is WebSocketState.CONNECTED
    assert ws.application_state is WebSocketState.CONNECTED


async def test_accept_after_connect_seen_does_not_receive_again(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket, text("first"))
    assert await ws.receive_event() == connect()
    await ws.accept()
    assert transport.inbox == [text("first")]
    assert await ws.receive_text() == "first"


async def test_close_sends_code_and_reason(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    await ws.close(4000, "bye")
    assert transport.sent[-1] == {"type": "websocket.close", "code": 4000, "reason": "bye"}
    ws2, transport2 = await accepted(WebSocket)
    await ws2.close()
    assert transport2.sent[-1] == {"type": "websocket.close", "code": 1000, "reason": ""}
    assert ws2.application_state is WebSocketState.DISCONNECTED


async def test_ensure_closed_closes_once(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    await ws.ensure_closed(1001)
    await ws.ensure_closed(1002)
    assert [m for m in transport.sent if m["type"] == "websocket.close"] == [
        {"type": "websocket.close", "code": 1001, "reason": ""}
    ]


async def test_ensure_closed_after_peer_disconnect_sends_nothing(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket, disconnect(1001))
    with pytest.raises(WebSocketDisconnect):
        await ws.receive_text()
    await ws.ensure_closed()
    assert transport.types == ["websocket.accept"]


async def test_ensure_closed_when_peer_vanished_does_not_raise(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    transport.send_error = ConnectionResetError("gone")
    await ws.ensure_closed()
    assert ws.application_state is WebSocketState.DISCONNECTED


async def test_ensure_closed_before_accept_denies(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket)
    await ws.ensure_closed()
    assert transport.sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]


# --------------------------------------------------------------------------- §4 receive


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("payload", ["héllo / 👋", ""])
async def test_receive_text_every_shape(WebSocket: type[Any], shape: str, payload: str) -> None:
    ws, _ = await accepted(WebSocket, text(payload, shape))
    received = await ws.receive_text()
    assert received == payload and type(received) is str


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("payload", [b"\x00\xff data", b""])
async def test_receive_bytes_every_shape(WebSocket: type[Any], shape: str, payload: bytes) -> None:
    ws, _ = await accepted(WebSocket, binary(payload, shape))
    received = await ws.receive_bytes()
    assert received == payload and type(received) is bytes


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("payload", [b"data", b""])
async def test_receive_text_of_a_binary_frame_is_unexpected(WebSocket: type[Any], shape: str, payload: bytes) -> None:
    ws, _ = await accepted(WebSocket, binary(payload, shape))
    with pytest.raises(bocadillo_ws.UnexpectedMessageType) as info:
        await ws.receive_text()
    assert info.value.close_code == 1003
    assert str(info.value) == "Expected a text frame, but received a binary frame."


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("payload", ["data", ""])
async def test_receive_bytes_of_a_text_frame_is_unexpected(WebSocket: type[Any], shape: str, payload: str) -> None:
    ws, _ = await accepted(WebSocket, text(payload, shape))
    with pytest.raises(bocadillo_ws.UnexpectedMessageType) as info:
        await ws.receive_bytes()
    assert info.value.close_code == 1003
    assert (info.value.expected, info.value.received) == ("binary", "text")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["text", "binary"])
@pytest.mark.parametrize("frame", ["text", "binary"])
async def test_receive_json_takes_both_frame_kinds_whatever_the_mode(
    WebSocket: type[Any], shape: str, mode: str, frame: str
) -> None:
    document = '{"msg":"héllo/👋","n":[1,2.5,null,true]}'
    event = text(document, shape) if frame == "text" else binary(document.encode(), shape)
    ws, _ = await accepted(WebSocket, event)
    assert await ws.receive_json(mode=mode) == {"msg": "héllo/👋", "n": [1, 2.5, None, True]}


@pytest.mark.parametrize("frame", ["text", "binary"])
@pytest.mark.parametrize("document", ["", "{", "[1,]", "{'a': 1}", "nul", '{"a":1}x'])
async def test_receive_json_invalid_json(WebSocket: type[Any], frame: str, document: str) -> None:
    event = text(document) if frame == "text" else binary(document.encode())
    ws, _ = await accepted(WebSocket, event)
    with pytest.raises(bocadillo_ws.InvalidJSON) as info:
        await ws.receive_json()
    error = info.value
    assert error.close_code == 1007
    assert isinstance(error, json.JSONDecodeError) and isinstance(error, ValueError)
    assert isinstance(error.pos, int) and error.lineno >= 1


@pytest.mark.parametrize("payload", [b"\xff", b'["\xc3"]', b'"\xed\xa0\x80"', b"[1]\xff"])
async def test_receive_json_bad_utf8_is_invalid_json(WebSocket: type[Any], payload: bytes) -> None:
    ws, _ = await accepted(WebSocket, binary(payload))
    with pytest.raises(bocadillo_ws.InvalidJSON, match="not valid UTF-8"):
        await ws.receive_json(mode="binary")


async def test_receive_json_bad_mode_is_starlettes_error(WebSocket: type[Any]) -> None:
    ws, _ = await accepted(WebSocket, text("1"))
    with pytest.raises(RuntimeError, match=re.escape('The "mode" argument should be "text" or "binary".')):
        await ws.receive_json(mode="xml")


@pytest.mark.parametrize("method", ["receive_text", "receive_bytes", "receive_json", "receive"])
async def test_disconnect_raises_websocket_disconnect(WebSocket: type[Any], method: str) -> None:
    ws, _ = await accepted(WebSocket, disconnect(4001, "going away"))
    with pytest.raises(WebSocketDisconnect) as info:
        await getattr(ws, method)()
    assert (info.value.code, info.value.reason) == (4001, "going away")
    assert ws.client_state is WebSocketState.DISCONNECTED


async def test_disconnect_without_code_is_1005(WebSocket: type[Any]) -> None:
    ws, _ = await accepted(WebSocket, {"type": "websocket.disconnect"})
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.receive_text()
    assert info.value.code == 1005


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "websocket.receive"}, 'carries neither "text" nor "bytes"'),
        ({"type": "websocket.receive", "text": None, "bytes": None}, 'carries neither "text" nor "bytes"'),
        ({"type": "websocket.receive", "text": 42}, '"text" must be str, not int'),
        ({"type": "websocket.receive", "bytes": "str"}, '"bytes" must be bytes, not str'),
    ],
)
@pytest.mark.parametrize("method", ["receive_text", "receive_bytes", "receive_json"])
async def test_malformed_events_are_clear_errors(
    WebSocket: type[Any], event: dict[str, Any], message: str, method: str
) -> None:
    ws, _ = await accepted(WebSocket, event)
    with pytest.raises(RuntimeError, match=message):
        await getattr(ws, method)()


async def test_receive_event_is_raw(WebSocket: type[Any]) -> None:
    frame = {"type": "websocket.receive", "text": "x", "bytes": None, "extra": 1}
    ws, _ = await accepted(WebSocket, frame, disconnect(1000))
    assert await ws.receive_event() is frame
    assert await ws.receive_event() == disconnect(1000)
    assert ws.client_state is WebSocketState.DISCONNECTED


# --------------------------------------------------------------------------- §4 send


async def test_send_text(WebSocket: type[Any]) -> None:
    class Text(str):
        pass

    ws, transport = await accepted(WebSocket)
    await ws.send_text("héllo")
    await ws.send_text(Text("sub"))
    await ws.send_text("")
    assert [f["text"] for f in transport.frames] == ["héllo", "sub", ""]


@pytest.mark.parametrize("bad", [b"bytes", 1, None, {"a": 1}])
async def test_send_text_refuses_non_str(WebSocket: type[Any], bad: object) -> None:
    ws, transport = await accepted(WebSocket)
    with pytest.raises(TypeError, match=f"send_text\\(\\) expects str, got {type(bad).__name__}"):
        await ws.send_text(bad)
    assert transport.frames == []


@pytest.mark.parametrize("data", [b"ab", bytearray(b"ab"), memoryview(b"ab"), b""])
async def test_send_bytes_accepts_bytes_like_and_sends_bytes(WebSocket: type[Any], data: Any) -> None:
    ws, transport = await accepted(WebSocket)
    await ws.send_bytes(data)
    sent = transport.frames[0]["bytes"]
    assert sent == bytes(data) and type(sent) is bytes


@pytest.mark.parametrize("bad", ["text", 1, None, [1]])
async def test_send_bytes_refuses_others(WebSocket: type[Any], bad: object) -> None:
    ws, transport = await accepted(WebSocket)
    with pytest.raises(TypeError, match=f"expects bytes, bytearray or memoryview, got {type(bad).__name__}"):
        await ws.send_bytes(bad)
    assert transport.frames == []


ORDINARY = [
    {"msg": "héllo / 👋 <b>&", "n": 1, "f": 2.5, "ok": True, "none": None, "list": [1, "2", [3]]},
    [1, -2, 3.25, "\u2028", "\x00\x1f", "a\\b\"c"],
    "just a string",
    12345678901234567890,
    {},
    [],
]


@pytest.mark.parametrize("data", ORDINARY)
async def test_send_json_is_starlettes_wire_text(WebSocket: type[Any], data: Any) -> None:
    ws, transport = await accepted(WebSocket)
    await ws.send_json(data)
    await ws.send_json(data, mode="binary")
    expected = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert transport.frames == [
        {"type": "websocket.send", "text": expected},
        {"type": "websocket.send", "bytes": expected.encode("utf-8")},
    ]


@pytest.mark.parametrize("bad", [{1, 2}, object(), b"bytes", {"k": complex(1, 2)}])
async def test_send_json_unserialisable_is_type_error(WebSocket: type[Any], bad: object) -> None:
    ws, transport = await accepted(WebSocket)
    with pytest.raises(TypeError, match="is not JSON serializable"):
        await ws.send_json(bad)
    assert transport.frames == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [float("-inf")], {"a": float("nan")}])
async def test_send_json_nan_is_value_error(WebSocket: type[Any], bad: object) -> None:
    ws, transport = await accepted(WebSocket)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        await ws.send_json(bad)
    assert transport.frames == []


async def test_send_json_bad_mode_is_starlettes_error(WebSocket: type[Any]) -> None:
    ws, _ = await accepted(WebSocket)
    with pytest.raises(RuntimeError, match=re.escape('The "mode" argument should be "text" or "binary".')):
        await ws.send_json({}, mode="xml")


async def test_send_event_is_raw(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    event = {"type": "websocket.send", "text": "raw", "extra": True}
    await ws.send_event(event)
    assert transport.sent[-1] is event


# --------------------------------------------------------------------------- §4 dispatch


@pytest.mark.parametrize(
    ("kind", "event", "value"),
    [
        ("text", text("hi"), "hi"),
        ("bytes", binary(b"hi"), b"hi"),
        ("json", text('{"a":[1]}'), {"a": [1]}),
        ("json", binary(b'{"a":[1]}'), {"a": [1]}),
        ("event", text("hi"), text("hi")),
    ],
)
async def test_receive_dispatches_on_receive_type(
    WebSocket: type[Any], kind: str, event: dict[str, Any], value: Any
) -> None:
    ws, _ = await accepted(WebSocket, event, receive_type=kind)
    assert await ws.receive() == value


@pytest.mark.parametrize(
    ("kind", "message", "frame"),
    [
        ("text", "hi", {"type": "websocket.send", "text": "hi"}),
        ("bytes", b"hi", {"type": "websocket.send", "bytes": b"hi"}),
        ("json", {"a": "é"}, {"type": "websocket.send", "text": '{"a":"é"}'}),
        ("event", {"type": "websocket.send", "text": "raw"}, {"type": "websocket.send", "text": "raw"}),
    ],
)
async def test_send_dispatches_on_send_type(
    WebSocket: type[Any], kind: str, message: Any, frame: dict[str, Any]
) -> None:
    ws, transport = await accepted(WebSocket, send_type=kind)
    await ws.send(message)
    assert transport.frames == [frame]


async def test_event_type_keeps_raw_semantics_for_starlette_code(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket, text("x"), value_type="event")
    assert (await ws.receive())["type"] == "websocket.connect"
    await ws.send({"type": "websocket.accept"})
    assert (await ws.receive())["text"] == "x"
    assert transport.types == ["websocket.accept"]


# --------------------------------------------------------------------------- §4 state violations


Scenario = Callable[[Any], Awaitable[Any]]


async def _receive_before_accept(ws: Any) -> Any:
    return await ws.receive_text()


async def _send_before_accept(ws: Any) -> Any:
    await ws.receive_event()  # the connect
    return await ws.send_event({"type": "websocket.send", "text": "x"})


async def _send_after_close(ws: Any) -> Any:
    await ws.accept()
    await ws.close()
    return await ws.send_event({"type": "websocket.send", "text": "x"})


async def _send_text_after_close(ws: Any) -> Any:
    await ws.accept()
    await ws.close()
    return await ws.send_text("x")


async def _double_close(ws: Any) -> Any:
    await ws.accept()
    await ws.close()
    return await ws.close()


async def _receive_after_disconnect(ws: Any) -> Any:
    await ws.accept()
    await ws.receive_event()  # the disconnect
    return await ws.receive_event()


async def _receive_text_after_disconnect(ws: Any) -> Any:
    await ws.accept()
    try:
        await ws.receive_text()
    except WebSocketDisconnect:
        pass
    return await ws.receive_text()


async def _first_event_not_connect(ws: Any) -> Any:
    return await ws.accept()


async def _unexpected_event_while_connected(ws: Any) -> Any:
    await ws.accept()
    return await ws.receive_event()


SCENARIOS: dict[str, tuple[Scenario, list[dict[str, Any]]]] = {
    "receive before accept": (_receive_before_accept, [connect(), text("x")]),
    "send before accept": (_send_before_accept, [connect()]),
    "send after close": (_send_after_close, [connect()]),
    "send_text after close": (_send_text_after_close, [connect()]),
    "double close": (_double_close, [connect()]),
    "receive after disconnect": (_receive_after_disconnect, [connect(), disconnect()]),
    "receive_text after disconnect": (_receive_text_after_disconnect, [connect(), disconnect()]),
    "first event is not connect": (_first_event_not_connect, [text("x")]),
    "unexpected event while connected": (_unexpected_event_while_connected, [connect(), connect()]),
}


def _starlette_receive_text_adapter(ws: StarletteWebSocket) -> StarletteWebSocket:
    # Starlette has no receive_event/send_event: they are its receive()/send().
    ws.receive_event = ws.receive  # type: ignore[attr-defined]
    ws.send_event = ws.send  # type: ignore[attr-defined]
    return ws


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_state_violations_raise_what_starlette_raises(WebSocket: type[Any], name: str) -> None:
    scenario, events = SCENARIOS[name]

    async def outcome(ws: Any) -> tuple[type[BaseException], str]:
        with pytest.raises(Exception) as info:
            await scenario(ws)
        return type(info.value), str(info.value)

    theirs_transport, ours_transport = Transport(*events), Transport(*events)
    theirs = _starlette_receive_text_adapter(
        StarletteWebSocket(dict(SCOPE), theirs_transport.receive, theirs_transport.send)
    )
    ours = WebSocket(dict(SCOPE), ours_transport.receive, ours_transport.send)
    assert await outcome(ours) == await outcome(theirs)
    assert ours_transport.sent == theirs_transport.sent
    assert (ours.client_state, ours.application_state) == (theirs.client_state, theirs.application_state)


@pytest.mark.parametrize("method", ["send_text", "send_bytes", "send_json", "send_event"])
async def test_oserror_on_send_is_disconnect_1006(WebSocket: type[Any], method: str) -> None:
    ws, transport = await accepted(WebSocket)
    transport.send_error = BrokenPipeError("peer gone")
    argument = {"text": "x", "bytes": b"x", "json": {}, "event": {"type": "websocket.send", "text": "x"}}
    with pytest.raises(WebSocketDisconnect) as info:
        await getattr(ws, method)(argument[method.split("_")[1]])
    assert info.value.code == 1006
    assert ws.application_state is WebSocketState.DISCONNECTED


# --------------------------------------------------------------------------- §6 async with / async for


async def test_async_with_accepts_and_closes_1000(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket)
    async with ws as entered:
        assert entered is ws
        assert ws.application_state is WebSocketState.CONNECTED
    assert transport.types == ["websocket.accept", "websocket.close"]
    assert transport.sent[-1]["code"] == 1000


async def test_async_with_already_accepted_and_closed(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    async with ws:
        await ws.close(4000)
    assert transport.types == ["websocket.accept", "websocket.close"]


@pytest.mark.parametrize("catch", [True, False])
async def test_async_with_disconnect_sends_nothing(WebSocket: type[Any], catch: bool) -> None:
    ws, transport = open_socket(WebSocket, disconnect(1001), catch_disconnect=catch)
    if catch:
        async with ws:
            await ws.receive_text()
            pytest.fail("unreachable: the disconnect raises")
    else:
        with pytest.raises(WebSocketDisconnect):
            async with ws:
                await ws.receive_text()
    assert transport.types == ["websocket.accept"]


async def test_async_with_catches_disconnect_subclasses(WebSocket: type[Any]) -> None:
    class Gone(WebSocketDisconnect):
        pass

    ws, transport = open_socket(WebSocket)
    async with ws:
        raise Gone(1001)
    assert transport.types == ["websocket.accept"]


@pytest.mark.parametrize(
    ("event", "method", "error", "code"),
    [
        (binary(b"x"), "receive_text", bocadillo_ws.UnexpectedMessageType, 1003),
        (text("x"), "receive_bytes", bocadillo_ws.UnexpectedMessageType, 1003),
        (text("{"), "receive_json", bocadillo_ws.InvalidJSON, 1007),
        (binary(b"\xff"), "receive_json", bocadillo_ws.InvalidJSON, 1007),
    ],
)
async def test_async_with_message_error_closes_with_its_code(
    WebSocket: type[Any], event: dict[str, Any], method: str, error: type[Exception], code: int
) -> None:
    ws, transport = open_socket(WebSocket, event)
    with pytest.raises(error):
        async with ws:
            await getattr(ws, method)()
    assert transport.sent[-1] == {"type": "websocket.close", "code": code, "reason": ""}


async def test_async_with_other_error_closes_1011(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket)
    with pytest.raises(ZeroDivisionError):
        async with ws:
            1 / 0  # noqa: B018
    assert transport.sent[-1] == {"type": "websocket.close", "code": 1011, "reason": ""}


async def test_async_with_websocket_exception_closes_with_its_code_and_reason(WebSocket: type[Any]) -> None:
    from starlette.exceptions import WebSocketException

    ws, transport = open_socket(WebSocket)
    async with ws:
        raise WebSocketException(code=4001, reason="go away")
    assert transport.sent[-1] == {"type": "websocket.close", "code": 4001, "reason": "go away"}
    assert ws.application_state is WebSocketState.DISCONNECTED


async def test_async_with_close_failure_never_hides_the_error(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket)
    with pytest.raises(KeyError, match="original"):
        async with ws:
            transport.send_error = RuntimeError("the transport is broken too")
            raise KeyError("original")


async def test_async_with_cancellation_sends_nothing(WebSocket: type[Any]) -> None:
    import asyncio

    ws, transport = open_socket(WebSocket)
    with pytest.raises(asyncio.CancelledError):
        async with ws:
            raise asyncio.CancelledError
    assert transport.types == ["websocket.accept"]


async def test_async_for_yields_typed_messages_until_disconnect(WebSocket: type[Any]) -> None:
    ws, _ = await accepted(WebSocket, text('{"n":1}'), binary(b'{"n":2}'), disconnect(1001), value_type="json")
    seen = []
    with pytest.raises(WebSocketDisconnect) as info:
        async for message in ws:
            seen.append(message)
    assert seen == [{"n": 1}, {"n": 2}]
    assert info.value.code == 1001


async def test_async_for_inside_async_with_ends_quietly(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket, text("a"), text("b"), disconnect(1000))
    seen = []
    async with ws:
        async for message in ws:
            seen.append(message)
            await ws.send(message.upper())
    assert seen == ["a", "b"]
    assert [f["text"] for f in transport.frames] == ["A", "B"]
    assert transport.types[-1] == "websocket.send"


@pytest.mark.parametrize(
    ("method", "events", "values"),
    [
        ("iter_text", [text("a"), text("")], ["a", ""]),
        ("iter_bytes", [binary(b"a"), binary(b"")], [b"a", b""]),
        ("iter_json", [text("[1]"), binary(b"{}")], [[1], {}]),
    ],
)
async def test_starlette_iterators_stop_silently(
    WebSocket: type[Any], method: str, events: list[dict[str, Any]], values: list[Any]
) -> None:
    ws, _ = await accepted(WebSocket, *events, disconnect(1001))
    assert [value async for value in getattr(ws, method)()] == values


# --------------------------------------------------------------------------- denial and from_starlette


async def test_send_denial_response(WebSocket: type[Any]) -> None:
    ws, transport = open_socket(WebSocket)
    await ws.send_denial_response(PlainTextResponse("nope", status_code=403))
    assert transport.types == ["websocket.http.response.start", "websocket.http.response.body"]
    assert transport.sent[0]["status"] == 403
    assert ws.application_state is WebSocketState.DISCONNECTED


async def test_send_denial_response_needs_the_extension(WebSocket: type[Any]) -> None:
    transport = Transport(connect())
    ws = WebSocket({**SCOPE, "extensions": {}}, transport.receive, transport.send)
    with pytest.raises(RuntimeError, match="doesn't support the Websocket Denial Response"):
        await ws.send_denial_response(PlainTextResponse("nope", status_code=403))


async def test_from_starlette_takes_over_and_writes_state_back(WebSocket: type[Any]) -> None:
    transport = Transport(connect(), text('{"a":1}'))
    original = StarletteWebSocket(dict(SCOPE), transport.receive, transport.send)
    await original.accept()
    ws = WebSocket.from_starlette(original, value_type="json")
    assert ws.application_state is WebSocketState.CONNECTED
    assert await ws.receive() == {"a": 1}
    await ws.close(4000)
    assert original.application_state is WebSocketState.DISCONNECTED
    assert transport.sent[-1] == {"type": "websocket.close", "code": 4000, "reason": ""}


async def test_from_starlette_writes_back_transport_loss(WebSocket: type[Any]) -> None:
    transport = Transport(connect())
    original = StarletteWebSocket(dict(SCOPE), transport.receive, transport.send)
    await original.accept()
    ws = WebSocket.from_starlette(original)
    transport.send_error = ConnectionResetError()
    with pytest.raises(WebSocketDisconnect):
        await ws.send_text("x")
    assert original.application_state is WebSocketState.DISCONNECTED


def test_from_starlette_refuses_other_objects(WebSocket: type[Any]) -> None:
    with pytest.raises(TypeError, match="expects a starlette WebSocket"):
        WebSocket.from_starlette(object())
    transport = Transport(connect())
    with pytest.raises(TypeError, match="this is a bocadillo_ws one already"):
        WebSocket.from_starlette(WebSocket(dict(SCOPE), transport.receive, transport.send))


async def test_from_starlette_and_the_frameworks_object_keep_one_state(WebSocket: type[Any]) -> None:
    """Issue 18: the wrapper wrote a stale copy of the states over FastAPI's object after a send."""
    transport = Transport(connect(), text("a"), text("b"), text('{"c":3}'))
    original = StarletteWebSocket(dict(SCOPE), transport.receive, transport.send)
    ws = WebSocket.from_starlette(original)  # before accept, as a dependency would
    await original.accept()  # the framework's object accepts...
    assert (ws.client_state, ws.application_state) == (WebSocketState.CONNECTED, WebSocketState.CONNECTED)
    await ws.send_text("1")  # ... the wrapper sends (fast path), and the framework's object goes on
    await original.send_text("2")
    assert await ws.receive_text() == "a"
    assert await original.receive_text() == "b"
    as_json = WebSocket.from_starlette(original, value_type="json")  # a second wrapper: the same state
    assert await as_json.receive() == {"c": 3}
    await original.close(4001)
    for wrapper in (ws, as_json):
        assert wrapper.application_state is WebSocketState.DISCONNECTED
    with pytest.raises(RuntimeError) as ours:
        await ws.send_text("late")
    with pytest.raises(RuntimeError) as starlettes:
        await original.send_text("late")
    assert str(ours.value) == str(starlettes.value)  # what this Starlette says for its own object
    assert transport.sent == [
        {"type": "websocket.accept", "subprotocol": None, "headers": []},
        {"type": "websocket.send", "text": "1"},
        {"type": "websocket.send", "text": "2"},
        {"type": "websocket.close", "code": 4001, "reason": ""},
    ]
    assert isinstance(original, StarletteWebSocket) and type(original).__name__ == "WebSocket"


def test_from_starlette_makes_no_reference_cycle(WebSocket: type[Any]) -> None:
    """A finished connection's objects go when the last reference does, not at the next GC pass."""
    transport = Transport(connect())
    original = StarletteWebSocket(dict(SCOPE), transport.receive, transport.send)
    wrappers = [WebSocket.from_starlette(original), WebSocket.from_starlette(original, value_type="json")]
    gone = [weakref.ref(original), *map(weakref.ref, wrappers)]
    gc.disable()
    try:
        del original, wrappers
        assert [ref() for ref in gone] == [None, None, None]
    finally:
        gc.enable()


async def test_from_starlette_wrapper_state_changes_reach_the_framework(WebSocket: type[Any]) -> None:
    transport = Transport(connect(), disconnect(1001))
    original = StarletteWebSocket(dict(SCOPE), transport.receive, transport.send)
    ws = WebSocket.from_starlette(original)
    again = WebSocket.from_starlette(ws)  # a wrapper's origin is wrapped again
    assert again._origin is original
    await ws.accept()
    assert original.application_state is WebSocketState.CONNECTED
    with pytest.raises(WebSocketDisconnect):
        await ws.receive_text()
    assert original.client_state is again.client_state is WebSocketState.DISCONNECTED
    ws.application_state = WebSocketState.DISCONNECTED  # user code setting it, as on Starlette's
    assert original.application_state is again.application_state is WebSocketState.DISCONNECTED
