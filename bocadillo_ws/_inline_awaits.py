"""The compiled backend's message methods on CPython 3.12+: bytecode coroutines over C helpers.

On 3.12+ the eval loop runs ``await`` of a Python coroutine inline (its
``SEND`` pushes the coroutine's frame onto the running one), but enters
every C-level awaitable from C, and that one hands its result back in a
``StopIteration``. Timed, a ``_Call`` driving the server's coroutine from C
then costs more than the pure twin's ``async def``. So on 3.12+ each
message method is the small ``async def`` below: it awaits the server's
``receive``/``send`` itself and leaves the rest to the compiled module's
functions (state checks, reading the event, the JSON codecs).

They are module globals, installed once by ``with_inline_awaits``, and
never looked up on ``self``: an instance of a Python subclass of a C type
has no inline attribute values, so 3.12 cannot specialise an attribute load
on it, while a global builtin's call is specialised. Every uncommon case (a
state other than connected, bad arguments, a ``str`` subclass, an event
other than a frame) goes to the C core's own method or ``received()``, so
behaviour, exception types and messages are the core's, which are the pure
twin's.

``_codec.pyx`` calls ``with_inline_awaits`` on 3.12+ only; on 3.10 and 3.11
its ``_Call`` methods are faster (``am_send``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect

from ._message_types import BYTES, EVENT, JSON, TEXT

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _not_installed(*args: Any) -> Any:
    raise RuntimeError("bocadillo_ws._inline_awaits: with_inline_awaits() was never called")


# The compiled module's functions (see the end of _codec.pyx), and the C
# core's own message methods for the uncommon cases: set by with_inline_awaits().
receive_now: Callable[[Any], Receive | None] = _not_installed
send_now: Callable[[Any], Send | None] = _not_installed
text_of: Callable[[Any], str | None] = _not_installed
bytes_of: Callable[[Any], bytes | None] = _not_installed
received: Callable[[Any, int, Any], Any] = _not_installed
json_event: Callable[[Any, Any, str], Message] = _not_installed
connection_lost: Callable[[Any], None] = _not_installed
core_receive_event: Callable[[Any], Awaitable[Message]] = _not_installed
core_send_event: Callable[[Any, Message], Awaitable[None]] = _not_installed
core_receive_text: Callable[[Any], Awaitable[str]] = _not_installed
core_receive_bytes: Callable[[Any], Awaitable[bytes]] = _not_installed
core_receive_json: Callable[[Any, str], Awaitable[Any]] = _not_installed
core_send_text: Callable[[Any, Any], Awaitable[None]] = _not_installed
core_send_bytes: Callable[[Any, Any], Awaitable[None]] = _not_installed
core_send_json: Callable[[Any, Any, str], Awaitable[None]] = _not_installed


def with_inline_awaits(core: type, c: Any) -> type:
    """``core`` under a subclass with the message methods below; ``c`` is the compiled module."""
    helpers = "receive_now send_now text_of bytes_of received json_event connection_lost"
    globals().update({name: getattr(c, name) for name in helpers.split()})
    typed = "receive_event send_event receive_text receive_bytes receive_json send_text send_bytes send_json"
    globals().update({f"core_{name}": getattr(core, name) for name in typed.split()})
    # receive()/send()/__anext__ dispatch in C, to these (in _message_types' order).
    c.use_inline_awaits(
        (receive_text, receive_bytes, receive_json, receive_event), (send_text, send_bytes, send_json, send_event)
    )
    methods = (receive_event, send_event, receive_text, receive_bytes, receive_json, send_text, send_bytes, send_json)
    namespace: dict[str, Any] = {}
    for method in methods:
        method.__qualname__ = f"{core.__name__}.{method.__name__}"
        namespace[method.__name__] = method
    namespace.update(receive=c.inline_receive, send=c.inline_send, __anext__=c.inline_receive)
    namespace.update(__slots__=(), __doc__=core.__doc__, __module__=core.__module__)
    return type(core.__name__, (core,), namespace)


# --------------------------------------------------------------------------- raw events


async def receive_event(self: Any) -> Message:
    """The next ASGI event, with Starlette's state checks."""
    server_receive = receive_now(self)
    if server_receive is None:
        return await core_receive_event(self)
    return received(self, EVENT, await server_receive())  # type: ignore[no-any-return]


async def send_event(self: Any, event: Message) -> None:
    """Send an ASGI event, with Starlette's state checks."""
    server_send = send_now(self)
    if server_send is None or event["type"] != "websocket.send":
        return await core_send_event(self, event)
    try:
        await server_send(event)
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context


# --------------------------------------------------------------------------- typed receive


async def receive_text(self: Any) -> str:
    server_receive = receive_now(self)
    if server_receive is None:
        return await core_receive_text(self)
    event = await server_receive()
    text = text_of(event)
    if text is None:  # not a text frame
        return received(self, TEXT, event)  # type: ignore[no-any-return]
    return text


async def receive_bytes(self: Any) -> bytes:
    server_receive = receive_now(self)
    if server_receive is None:
        return await core_receive_bytes(self)
    event = await server_receive()
    data = bytes_of(event)
    if data is None:  # not a binary frame
        return received(self, BYTES, event)  # type: ignore[no-any-return]
    return data


async def receive_json(self: Any, mode: str = "text") -> Any:
    """The next frame's payload parsed as JSON; text and binary frames both work."""
    server_receive = receive_now(self)
    if server_receive is None or (mode != "text" and mode != "binary"):
        return await core_receive_json(self, mode)
    return received(self, JSON, await server_receive())


# --------------------------------------------------------------------------- typed send


async def send_text(self: Any, data: str) -> None:
    server_send = send_now(self)
    if server_send is None or type(data) is not str:
        return await core_send_text(self, data)
    try:
        await server_send({"type": "websocket.send", "text": data})
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context


async def send_bytes(self: Any, data: bytes | bytearray | memoryview) -> None:
    server_send = send_now(self)
    if server_send is None or type(data) is not bytes:
        return await core_send_bytes(self, data)
    try:
        await server_send({"type": "websocket.send", "bytes": data})
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context


async def send_json(self: Any, data: Any, mode: str = "text") -> None:
    """Compact JSON as a text frame, or as a binary frame with ``mode="binary"``."""
    server_send = send_now(self)
    if server_send is None or (mode != "text" and mode != "binary"):
        return await core_send_json(self, data, mode)
    event = json_event(self, data, mode)
    try:
        await server_send(event)
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context
