"""The compiled backend's message methods, as the coroutine functions introspection sees.

Every public message method must be a coroutine function: Starlette's
``is_async_callable``, ``inspect.iscoroutinefunction``, anyio and FastAPI
decide from it whether to await a callable or run it in a thread. The class
holds a ``CoroutineMethod`` (``_awaitable.h``) for each ``async def`` below:
introspection reads the function (its code, name, signature, annotations:
the pure twin's), while a call with positional arguments goes straight to
the awaitable ``_codec.awaitable`` makes, with no Python frame. Calls with
keyword arguments run the function itself, which awaits the same awaitable.

Receives on 3.12+ are the functions themselves (see ``_C_RECEIVES`` in
``_codec.pyx``): their bodies await the server's ``receive()`` and leave the
rest to the extension's helpers, module globals installed once by
``with_methods`` and never looked up on ``self``.

The rare cases (a state other than connected, a bad argument) are the
coroutines at the end, which follow the pure twin's logic line by line
(through Starlette's own state machine, ``_starlette_states``), so
behaviour, exception types and messages are the pure twin's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect

from . import _starlette_states as states
from ._message_types import BYTES, CONNECTED, EVENT, JSON, TEXT

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]

_MODE_ERROR = 'The "mode" argument should be "text" or "binary".'

# The calls' kinds, as _codec.pyx numbers them.
RECEIVE_TEXT, RECEIVE_BYTES, RECEIVE_JSON, RECEIVE_EVENT = 0, 1, 2, 3
SEND_TEXT, SEND_BYTES, SEND_JSON, SEND_EVENT, RECEIVE, SEND = 4, 5, 6, 7, 8, 9


def _not_installed(*args: Any) -> Any:
    raise RuntimeError("bocadillo_ws._codec_methods: with_methods() was never called")


# The compiled module's functions, set by with_methods().
awaitable: Callable[..., Awaitable[Any]] = _not_installed
receive_now: Callable[[Any], Receive | None] = _not_installed
client_receive_now: Callable[[Any], Receive | None] = _not_installed
text_of: Callable[[Any], str | None] = _not_installed
bytes_of: Callable[[Any], bytes | None] = _not_installed
received: Callable[[Any, int, Any], Any] = _not_installed
typed_received: Callable[[Any, Any], Any] = _not_installed
unpacked: Callable[[Any, int, Any], Any] = _not_installed
typed_receive: Callable[[Any], Awaitable[Any]] = _not_installed
connection_lost: Callable[[Any], None] = _not_installed

_HELPERS = (
    "awaitable receive_now client_receive_now text_of bytes_of received typed_received unpacked typed_receive"
    " connection_lost"
).split()


def with_methods(core: type, c: Any) -> type:
    """``core`` under a subclass with the message methods below; ``c`` is the compiled module."""
    globals().update({name: getattr(c, name) for name in _HELPERS})
    functions = {}
    for function in (
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
        function.__qualname__ = f"{core.__name__}.{function.__name__}"
        del function.__annotations__["self"]  # as the pure twin's methods: signatures compare equal
        functions[function.__name__] = function
    namespace: dict[str, Any] = {"__slots__": (), "__doc__": core.__doc__, "__module__": core.__module__}
    namespace.update(c.coroutine_methods(functions, _receive_rare, _send_rare))
    namespace.update(__aiter__=__aiter__, __anext__=c.typed_anext, _lost=_lost)
    return type(core.__name__, (core,), namespace)


# --------------------------------------------------------------------------- the methods


async def receive_event(self: Any) -> Message:
    """The next ASGI event, with Starlette's state checks."""
    server_receive = client_receive_now(self)
    if server_receive is None:
        return await states.call(self, "receive")  # type: ignore[no-any-return]
    return received(self, EVENT, await server_receive())  # type: ignore[no-any-return]


async def send_event(self: Any, event: Message) -> None:
    """Send an ASGI event, with Starlette's state checks."""
    return await awaitable(self, SEND_EVENT, event)  # type: ignore[no-any-return]


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
    # Inline, not `await receive_text(self)`: one coroutine frame, not two.
    server_receive = receive_now(self)
    if server_receive is None:  # not connected both ways: the typed method and its checks
        return await typed_receive(self)
    return typed_received(self, await server_receive())


async def send_text(self: Any, data: str) -> None:
    return await awaitable(self, SEND_TEXT, data)  # type: ignore[no-any-return]


async def send_bytes(self: Any, data: bytes | bytearray | memoryview) -> None:
    return await awaitable(self, SEND_BYTES, data)  # type: ignore[no-any-return]


async def send_json(self: Any, data: Any, mode: str = "text") -> None:
    """Compact JSON as a text frame, or as a binary frame with ``mode="binary"``."""
    return await awaitable(self, SEND_JSON, data, mode)  # type: ignore[no-any-return]


async def send(self: Any, message: Any) -> None:
    """``send_<send_type>(message)``."""
    return await awaitable(self, SEND, message)  # type: ignore[no-any-return]


def __aiter__(self: Any) -> Any:
    return self


def _lost(self: Any) -> None:
    """The transport failed (the pure twin's method of the same name): the application side is closed."""
    connection_lost(self)


# --------------------------------------------------------------------------- the rare cases


async def _receive_rare(self: Any, kind: int, *starlette_call: Any) -> Any:
    # Not both sides connected: Starlette's state machine decides.
    if self._app_state != CONNECTED:
        return await states.call(self, *starlette_call)
    return unpacked(self, kind, await states.call(self, "receive"))


async def _send_rare(self: Any, event: Message) -> None:
    # The application side is not connected: Starlette's state machine decides.
    if self._app_state != CONNECTED:
        return await states.call(self, "send", event)  # type: ignore[no-any-return]
    try:
        await self._send(event)
    except OSError:
        connection_lost(self)
        raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context
