"""Every rare path of the connection state machine, run by Starlette itself.

Both backends handle the two hot cases on their own: a ``websocket.receive``
event while the client is connected, and a ``websocket.send`` while the
application is connected. Everything else (connect, accept, close,
disconnect, denial responses, and every state violation) goes through a
Starlette ``WebSocket`` put in the same state, so the transitions, exception
types and messages are exactly those of the installed Starlette.
"""

from __future__ import annotations

import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.websockets import WebSocket as StarletteWebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ._errors import UnexpectedMessageType

T = TypeVar("T")

if TYPE_CHECKING:
    from starlette.types import Message


def starlette_twin(ws: Any) -> StarletteWebSocket:
    """A Starlette WebSocket in ``ws``'s state, talking to the same transport.

    When ``ws`` wraps a framework's WebSocket (``from_starlette``), that object
    is reused, so the framework sees accurate states afterwards.
    """
    twin: StarletteWebSocket | None = ws._origin
    if twin is None:
        twin = StarletteWebSocket(ws.scope, ws._receive, ws._send)
    twin.client_state = ws.client_state
    twin.application_state = ws.application_state
    return twin


# --------------------------------------------------------------------------- one state for two objects

# Where a shared origin keeps its wrappers (weakly: a wrapper holds its origin,
# so no reference cycle keeps a finished connection's objects alive until a GC).
WRAPPERS = "_bocadillo_ws_wrappers"
_sharing_classes: dict[type, type] = {}


def share(origin: StarletteWebSocket, wrapper: Any) -> None:
    """Make a framework's WebSocket and its ``from_starlette`` wrapper(s) keep one state.

    The wrapper reads its states from its own fields (its hot path) and
    writes every change through to the origin (its state setters and its
    lost-connection path do). The origin's class becomes a subclass (same
    layout, so ``__class__`` may change) whose ``client_state`` and
    ``application_state`` setters also write every live wrapper's fields. A
    framework driving its own object (FastAPI's handlers, user code) and the
    wrappers then never disagree.
    """
    wrappers = origin.__dict__.get(WRAPPERS)
    if wrappers is None:
        wrappers = origin.__dict__[WRAPPERS] = weakref.WeakSet()
        origin.__class__ = _sharing_class(type(origin))
    wrappers.add(wrapper)


def _sharing_class(cls: type) -> type:
    sharing = _sharing_classes.get(cls)
    if sharing is None:
        namespace = {
            "__slots__": (),
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
            "client_state": property(_get_client_state, _set_client_state),
            "application_state": property(_get_application_state, _set_application_state),
        }
        sharing = _sharing_classes[cls] = type(cls.__name__, (cls,), namespace)
    return sharing


# The origin keeps its states where Starlette put them (its __dict__): the
# properties exist for their setters, which reach the wrappers.


def _get_client_state(origin: Any) -> WebSocketState:
    return origin.__dict__["client_state"]  # type: ignore[no-any-return]


def _set_client_state(origin: Any, state: WebSocketState) -> None:
    state = origin.__dict__["client_state"] = WebSocketState(state)
    for wrapper in origin.__dict__[WRAPPERS]:
        wrapper._set_states(state.value, wrapper._app_state)


def _get_application_state(origin: Any) -> WebSocketState:
    return origin.__dict__["application_state"]  # type: ignore[no-any-return]


def _set_application_state(origin: Any, state: WebSocketState) -> None:
    state = origin.__dict__["application_state"] = WebSocketState(state)
    for wrapper in origin.__dict__[WRAPPERS]:
        wrapper._set_states(wrapper._client_state, state.value)


# --------------------------------------------------------------------------- Starlette runs the rare paths


async def call(ws: Any, method: str, *args: Any) -> Any:
    """Run Starlette's ``method`` for ``ws`` and adopt the states it leaves."""
    twin = starlette_twin(ws)
    try:
        return await getattr(twin, method)(*args)
    finally:
        ws.client_state = twin.client_state
        ws.application_state = twin.application_state


def replay_receive(ws: Any, event: Message) -> Message:
    """Starlette's ``receive()`` applied to an event the backend already read.

    Used for anything but ``websocket.receive`` while connected: a disconnect
    (the state moves on) or an event Starlette refuses (it raises). It runs
    to completion at once: Starlette's ``receive()`` awaits nothing but the
    replayed event.
    """
    twin = starlette_twin(ws)

    async def replay() -> Message:
        return event

    twin._receive = replay
    try:
        return run_now(twin.receive())
    finally:
        twin._receive = ws._receive
        ws.client_state = twin.client_state


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("Starlette's receive() suspended while replaying an event")


def raise_for_payload(event: Message, expected: str) -> Any:
    """The payload of ``event`` as ``expected`` ("text", "bytes" or "json"), or the right error.

    The backends call this only when their fast path did not find a payload
    of the exact type; it accepts str and bytes subclasses and bytearray.
    """
    kind = event.get("type")
    if kind == "websocket.disconnect":
        raise WebSocketDisconnect(event.get("code", 1005), event.get("reason"))
    if kind != "websocket.receive":
        raise RuntimeError(f'Expected ASGI message "websocket.receive", but got {kind!r}')
    text = event.get("text")
    data = event.get("bytes")
    if text is not None and not isinstance(text, str):
        raise RuntimeError(
            f'Malformed ASGI "websocket.receive" event: "text" must be str, not {type(text).__name__}'
        )
    if data is not None and not isinstance(data, (bytes, bytearray)):
        raise RuntimeError(
            f'Malformed ASGI "websocket.receive" event: "bytes" must be bytes, not {type(data).__name__}'
        )
    if text is None and data is None:
        raise RuntimeError('Malformed ASGI "websocket.receive" event: it carries neither "text" nor "bytes"')
    if expected == "text":
        if text is None:
            raise UnexpectedMessageType("text", "binary")
        return text
    if expected == "bytes":
        if data is None:
            raise UnexpectedMessageType("binary", "text")
        return data
    return text if text is not None else bytes(data)  # type: ignore[arg-type]  # one of them is set


def send_type_error(method: str, expected: str, data: object) -> TypeError:
    return TypeError(f"{method}() expects {expected}, got {type(data).__name__}")
