"""The compiled backend's message methods: Python coroutines over the extension's C helpers.

Every public message method must be a real coroutine function: Starlette's
``is_async_callable``, ``inspect.iscoroutinefunction``, anyio and FastAPI
decide from the code object's flags whether to await a callable or run it in
a thread. So each method is the small ``async def`` below, the twin of
``_codec_py``'s method of the same name: it awaits the server's
``receive``/``send`` itself (the eval loop runs that ``await`` without
leaving the interpreter) and leaves the rest to ``_codec.pyx``'s functions:
the state checks, reading the event, building it, the JSON codecs.

The helpers are module globals, installed once by ``with_methods``, never
looked up on ``self``: an instance of a Python subclass of a C type has no
inline attribute values, so the specialising interpreter cannot speed up an
attribute load on it, while a global builtin's call is specialised. Every
uncommon case (a state other than connected, a bad argument, a ``str``
subclass, an event other than a frame) takes the ``*_rare`` paths, which
follow the pure twin's logic line by line (through Starlette's own state
machine, ``_starlette_states``), so behaviour, exception types and messages
are the pure twin's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect

from . import _starlette_states as states
from ._message_types import BYTES, CONNECTED, EVENT, JSON, TEXT

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_MODE_ERROR = 'The "mode" argument should be "text" or "binary".'


def _not_installed(*args: Any) -> Any:
    raise RuntimeError("bocadillo_ws._codec_methods: with_methods() was never called")


# The compiled module's functions (the end of _codec.pyx), set by with_methods().
receive_now: Callable[[Any], Receive | None] = _not_installed
client_receive_now: Callable[[Any], Receive | None] = _not_installed
send_now: Callable[[Any], Send | None] = _not_installed
text_of: Callable[[Any], str | None] = _not_installed
bytes_of: Callable[[Any], bytes | None] = _not_installed
received: Callable[[Any, int, Any], Any] = _not_installed
unpacked: Callable[[Any, int, Any], Any] = _not_installed
text_event: Callable[[Any], Message] = _not_installed
bytes_event: Callable[[Any], Message] = _not_installed
json_event: Callable[[Any, Any, str], Message] = _not_installed
connection_lost: Callable[[Any], None] = _not_installed
typed_receive: Callable[[Any], Awaitable[Any]] = _not_installed
typed_send: Callable[[Any, Any], Awaitable[None]] = _not_installed

_HELPERS = (
    "receive_now client_receive_now send_now text_of bytes_of received unpacked text_event bytes_event json_event"
    " connection_lost typed_receive typed_send"
).split()


def with_methods(core: type, c: Any) -> type:
    """``core`` under a subclass with the message methods below; ``c`` is the compiled module."""
    globals().update({name: getattr(c, name) for name in _HELPERS})
    c.use_methods(
        (receive_text, receive_bytes, receive_json, receive_event), (send_text, send_bytes, send_json, send_event)
    )
    namespace: dict[str, Any] = {"__slots__": (), "__doc__": core.__doc__, "__module__": core.__module__}
    for method in (
        receive_event,
        send_event,
        receive_text,
        receive_bytes,
        receive_json,
        receive,
        send_text,
        send_bytes,
        send_json,
        send,
    ):
        method.__qualname__ = f"{core.__name__}.{method.__name__}"
        del method.__annotations__["self"]  # as the pure twin's methods: signatures compare equal
        namespace[method.__name__] = method
    namespace.update(__aiter__=__aiter__, __anext__=c.typed_anext, _lost=_lost)
    return type(core.__name__, (core,), namespace)


# --------------------------------------------------------------------------- raw events


async def receive_event(self: Any) -> Message:
    """The next ASGI event, with Starlette's state checks."""
    server_receive = client_receive_now(self)
    if server_receive is None:
        return await states.call(self, "receive")  # type: ignore[no-any-return]
    return received(self, EVENT, await server_receive())  # type: ignore[no-any-return]


async def send_event(self: Any, event: Message) -> None:
    """Send an ASGI event, with Starlette's state checks."""
    server_send = send_now(self)
    if server_send is not None and event["type"] == "websocket.send":
        try:
            await server_send(event)
        except OSError:
            connection_lost(self)
            raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context
        return
    await states.call(self, "send", event)


# --------------------------------------------------------------------------- typed receive


async def _receive_rare(self: Any, kind: int, *starlette_call: Any) -> Any:
    # Not both sides connected: Starlette's state machine decides.
    if self._app_state != CONNECTED:
        return await states.call(self, *starlette_call)
    return unpacked(self, kind, await states.call(self, "receive"))


async def receive_text(self: Any) -> str:
    server_receive = receive_now(self)
    if server_receive is None:
        return await _receive_rare(self, TEXT, "receive_text")  # type: ignore[no-any-return]
    event = await server_receive()
    text = text_of(event)
    if text is None:  # not a text frame
        return received(self, TEXT, event)  # type: ignore[no-any-return]
    return text


async def receive_bytes(self: Any) -> bytes:
    server_receive = receive_now(self)
    if server_receive is None:
        return await _receive_rare(self, BYTES, "receive_bytes")  # type: ignore[no-any-return]
    event = await server_receive()
    data = bytes_of(event)
    if data is None:  # not a binary frame
        return received(self, BYTES, event)  # type: ignore[no-any-return]
    return data


async def receive_json(self: Any, mode: str = "text") -> Any:
    """The next frame's payload parsed as JSON; text and binary frames both work."""
    if mode != "text" and mode != "binary":
        raise RuntimeError(_MODE_ERROR)
    server_receive = receive_now(self)
    if server_receive is None:
        return await _receive_rare(self, JSON, "receive_json", mode)
    return received(self, JSON, await server_receive())


async def receive(self: Any) -> Any:
    """``receive_<receive_type>()``."""
    return await typed_receive(self)


# --------------------------------------------------------------------------- typed send


async def _send_rare(self: Any, event: Message) -> None:
    # The application side is not connected: Starlette's state machine decides.
    if self._app_state != CONNECTED:
        return await states.call(self, "send", event)  # type: ignore[no-any-return]
    try:
        await self._send(event)
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context


async def send_text(self: Any, data: str) -> None:
    server_send = send_now(self)
    if server_send is None or type(data) is not str:
        return await _send_rare(self, text_event(data))
    try:
        await server_send({"type": "websocket.send", "text": data})
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context


async def send_bytes(self: Any, data: bytes | bytearray | memoryview) -> None:
    server_send = send_now(self)
    if server_send is None or type(data) is not bytes:
        return await _send_rare(self, bytes_event(data))
    try:
        await server_send({"type": "websocket.send", "bytes": data})
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context


async def send_json(self: Any, data: Any, mode: str = "text") -> None:
    """Compact JSON as a text frame, or as a binary frame with ``mode="binary"``."""
    event = json_event(self, data, mode)
    server_send = send_now(self)
    if server_send is None:
        return await _send_rare(self, event)
    try:
        await server_send(event)
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context


async def send(self: Any, message: Any) -> None:
    """``send_<send_type>(message)``."""
    return await typed_send(self, message)


# --------------------------------------------------------------------------- iteration


def __aiter__(self: Any) -> Any:
    return self


def _lost(self: Any) -> None:
    """The transport failed (the pure twin's method of the same name): the application side is closed."""
    connection_lost(self)
