"""Pure-Python backend: the twin of ``_codec.pyx``.

Same classes, same behaviour, same exceptions and messages; used when the
extension is disabled (``BOCADILLO_WS_NO_EXTENSIONS=1``) or not on CPython.
Any change here lands in ``_codec.pyx`` in the same commit, and the reverse.

The hot paths are written out in each method rather than shared through
helpers: on CPython a Python-level call costs more than the work it saves.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Coroutine
from inspect import CO_ITERABLE_COROUTINE
from types import CoroutineType, GeneratorType
from typing import Any

import ujson
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from . import _json_fallback as fallback
from . import _starlette_states as states
from ._message_types import (
    BYTES,
    CONNECTED,
    DISCONNECTED,
    JSON,
    MESSAGE_TYPES,
    TEXT,
    message_type_code,
)

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by the no-orjson test env
    orjson = None  # type: ignore[assignment]
_STATES = tuple(WebSocketState)

_MODE_ERROR = 'The "mode" argument should be "text" or "binary".'


# --------------------------------------------------------------------------- codecs


# The codecs' two scans (the compiled twin does them in C): whether a fast
# codec's output may print a float unlike json, and whether a payload may
# hold an integer orjson would read as a float.
has_float_suspect = fallback.has_float_suspect
has_long_digit_run = fallback.has_long_digit_run


class JSONCodec:
    """How one connection turns values into JSON and back."""

    __slots__ = ()
    name = "abstract"

    def encode_text(self, data: Any) -> str:
        raise NotImplementedError

    def encode_binary(self, data: Any) -> bytes:
        return self.encode_text(data).encode("utf-8")

    def decode(self, payload: str | bytes) -> Any:
        raise NotImplementedError


class UJSONCodec(JSONCodec):
    """ujson for speed; the standard library for exact errors and the odd input."""

    __slots__ = ()
    name = "ujson"

    def encode_text(self, data: Any) -> str:
        try:
            # Positional: (ensure_ascii, encode_html_chars, escape_forward_slashes,
            # sort_keys, indent, allow_nan), ujson's order since 5.x. Keywords
            # cost ujson more than encoding a chat message.
            out: str = ujson.dumps(data, False, False, False, False, 0, False)
        except (TypeError, ValueError, OverflowError):
            return fallback.dumps(data)
        if has_float_suspect(out):  # maybe a float json prints otherwise
            return fallback.fix_floats(out)
        return out

    def decode(self, payload: str | bytes) -> Any:
        # Decode bytes ourselves: ujson.loads(bytes) accepts CESU-8 surrogates.
        text = payload if isinstance(payload, str) else fallback.decode_utf8(payload)
        try:
            return ujson.loads(text)
        except (ValueError, TypeError):
            pass
        return fallback.loads(text)


class StdlibJSONCodec(JSONCodec):
    """The standard library's ``json``, exactly as Starlette uses it."""

    __slots__ = ()
    name = "json"

    def encode_text(self, data: Any) -> str:
        return fallback.dumps(data)

    def decode(self, payload: str | bytes) -> Any:
        text = payload if isinstance(payload, str) else fallback.decode_utf8(payload)
        return fallback.loads(text)


class OrjsonCodec(JSONCodec):
    """orjson: strict RFC 8259, UTF-8 bytes natively."""

    __slots__ = ()
    name = "orjson"

    def __init__(self) -> None:
        if orjson is None:
            raise ImportError(fallback.ORJSON_MISSING)

    def encode_text(self, data: Any) -> str:
        return self.encode_binary(data).decode("utf-8")

    def encode_binary(self, data: Any) -> bytes:
        try:
            out: bytes = orjson.dumps(data)
        except TypeError:  # orjson.JSONEncodeError; also big ints and non-str keys
            return fallback.dumps(data).encode("utf-8")
        # orjson writes NaN and Infinity as null: never send that silently.
        if out.find(b"null") >= 0 and fallback.has_non_finite_float(data):  # .find: see has_float_suspect
            raise ValueError("Out of range float values are not JSON compliant")
        if has_float_suspect(out):  # maybe a float json prints otherwise
            return fallback.fix_floats(out.decode("utf-8")).encode("utf-8")
        return out

    def decode(self, payload: str | bytes) -> Any:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            error = fallback.strict_error(exc, payload)
        else:
            if has_long_digit_run(payload):  # maybe an int orjson made a float
                return fallback.exact_loads(payload)
            return value
        raise error


class CustomJSONCodec(JSONCodec):
    """Any object with ``dumps(obj) -> str | bytes`` and ``loads(str | bytes)``."""

    __slots__ = ("codec",)
    name = "custom"

    def __init__(self, codec: Any) -> None:
        self.codec = codec

    def encode_text(self, data: Any) -> str:
        return fallback.custom_text(self._dumps(data), self.codec)

    def encode_binary(self, data: Any) -> bytes:
        return fallback.custom_bytes(self._dumps(data), self.codec)

    def _dumps(self, data: Any) -> Any:
        try:
            return self.codec.dumps(data)
        except RecursionError:
            pass
        raise ValueError(f"{fallback.TOO_DEEP} while encoding JSON")

    def decode(self, payload: str | bytes) -> Any:
        text = payload if isinstance(payload, str) else fallback.decode_utf8(payload)
        try:
            return self.codec.loads(text)
        except (ValueError, RecursionError) as exc:
            error = fallback.invalid_json(exc, text)
        raise error


_NAMED_CODECS: dict[str, Callable[[], JSONCodec]] = {
    "ujson": UJSONCodec,
    "orjson": OrjsonCodec,
    "json": StdlibJSONCodec,
}


def make_json_codec(spec: object = "ujson") -> JSONCodec:
    """The codec for ``json_codec=spec``: a name or an object with dumps()/loads()."""
    return fallback.resolve(spec, _NAMED_CODECS, CustomJSONCodec)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- the connection


class WebSocketCore:
    """The message hot path of ``bocadillo_ws.WebSocket``.

    The public class adds Starlette's ``HTTPConnection`` attributes and the
    lifecycle helpers on top; this part receives, sends and dispatches.
    """

    # "scope" is HTTPConnection's one attribute: a slot, so a connection
    # object needs no instance __dict__ unless a lazy property caches into it.
    __slots__ = (
        "_app_state",
        "_client_state",
        "_json",
        "_origin",
        "_receive",
        "_receive_kind",
        "_send",
        "_send_kind",
        "catch_disconnect",
        "scope",
    )

    scope: Scope
    _receive: Receive
    _send: Send
    _app_state: int
    _client_state: int
    _receive_kind: int
    _send_kind: int
    _json: JSONCodec
    _origin: Any
    catch_disconnect: bool

    def _bind(
        self,
        receive: Receive,
        send: Send,
        receive_type: object,
        send_type: object,
        catch_disconnect: bool,
        json_codec: object,
    ) -> None:
        self._receive_kind = message_type_code(receive_type, "receive_type")
        self._send_kind = message_type_code(send_type, "send_type")
        self._json = make_json_codec(json_codec)
        self._receive = receive
        self._send = send
        self._origin = None
        self._client_state = self._app_state = 0
        self.catch_disconnect = bool(catch_disconnect)

    def _adopt(self, origin: Any) -> None:
        """Take the states of a framework's Starlette WebSocket (from_starlette then shares them)."""
        self._origin = origin
        self._client_state = origin.client_state.value
        self._app_state = origin.application_state.value

    def _set_states(self, client: int, app: int) -> None:
        """Both states as given, and nothing else (how a shared origin writes them: states.share)."""
        self._client_state = client
        self._app_state = app

    # ------------------------------------------------------------------ attributes

    @property
    def receive_type(self) -> str:
        return MESSAGE_TYPES[self._receive_kind]

    @property
    def send_type(self) -> str:
        return MESSAGE_TYPES[self._send_kind]

    @property
    def json_codec(self) -> str:
        return self._json.name

    @property
    def client_state(self) -> WebSocketState:
        return _STATES[self._client_state]

    @client_state.setter
    def client_state(self, state: WebSocketState) -> None:
        self._client_state = WebSocketState(state).value
        if self._origin is not None:  # the origin writes every wrapper's
            self._origin.client_state = state

    @property
    def application_state(self) -> WebSocketState:
        return _STATES[self._app_state]

    @application_state.setter
    def application_state(self, state: WebSocketState) -> None:
        self._app_state = WebSocketState(state).value
        if self._origin is not None:  # the origin writes every wrapper's
            self._origin.application_state = state

    # ------------------------------------------------------------------ raw events

    async def receive_event(self) -> Message:
        """The next ASGI event, with Starlette's state checks."""
        if self._client_state == CONNECTED:
            event = await self._receive()
            if event["type"] == "websocket.receive":
                return event
            return states.replay_receive(self, event)
        return await states.call(self, "receive")  # type: ignore[no-any-return]

    async def send_event(self, event: Message) -> None:
        """Send an ASGI event, with Starlette's state checks."""
        if self._app_state == CONNECTED and event["type"] == "websocket.send":
            try:
                await self._send(event)
            except OSError:
                self._lost()
                raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context
            return
        await states.call(self, "send", event)

    def _lost(self) -> None:
        # The transport failed: Starlette marks the application side closed.
        self._app_state = DISCONNECTED
        if self._origin is not None:
            self._origin.application_state = WebSocketState.DISCONNECTED

    # ------------------------------------------------------------------ typed receive

    async def receive_text(self) -> str:
        if self._app_state != CONNECTED:
            return await states.call(self, "receive_text")  # type: ignore[no-any-return]
        if self._client_state == CONNECTED:
            event = await self._receive()
            if event["type"] != "websocket.receive":
                event = states.replay_receive(self, event)
        else:
            event = await states.call(self, "receive")
        text = event.get("text")
        if type(text) is str:
            return text
        return states.raise_for_payload(event, "text")  # type: ignore[no-any-return]

    async def receive_bytes(self) -> bytes:
        if self._app_state != CONNECTED:
            return await states.call(self, "receive_bytes")  # type: ignore[no-any-return]
        if self._client_state == CONNECTED:
            event = await self._receive()
            if event["type"] != "websocket.receive":
                event = states.replay_receive(self, event)
        else:
            event = await states.call(self, "receive")
        data = event.get("bytes")
        if type(data) is bytes:
            return data
        return states.raise_for_payload(event, "bytes")  # type: ignore[no-any-return]

    async def receive_json(self, mode: str = "text") -> Any:
        """The next frame's payload parsed as JSON; text and binary frames both work."""
        if mode != "text" and mode != "binary":
            raise RuntimeError(_MODE_ERROR)
        if self._app_state != CONNECTED:
            return await states.call(self, "receive_json", mode)
        if self._client_state == CONNECTED:
            event = await self._receive()
            if event["type"] != "websocket.receive":
                event = states.replay_receive(self, event)
        else:
            event = await states.call(self, "receive")
        payload = event.get("text")
        if type(payload) is not str:
            payload = event.get("bytes")
            if type(payload) is not bytes:
                payload = states.raise_for_payload(event, "json")
        return self._json.decode(payload)

    async def receive(self) -> Any:
        """``receive_<receive_type>()``."""
        kind = self._receive_kind
        if kind == TEXT:
            return await self.receive_text()
        if kind == JSON:
            return await self.receive_json()
        if kind == BYTES:
            return await self.receive_bytes()
        return await self.receive_event()

    def _typed_receive(self) -> Coroutine[Any, Any, Any]:
        # The typed method's coroutine itself: `async for` awaits it with no frame between.
        kind = self._receive_kind
        if kind == TEXT:
            return self.receive_text()
        if kind == JSON:
            return self.receive_json()
        if kind == BYTES:
            return self.receive_bytes()
        return self.receive_event()

    # ------------------------------------------------------------------ typed send

    async def send_text(self, data: str) -> None:
        if not isinstance(data, str):
            raise states.send_type_error("send_text", "str", data)
        event = {"type": "websocket.send", "text": data}
        if self._app_state != CONNECTED:
            return await states.call(self, "send", event)  # type: ignore[no-any-return]
        try:
            await self._send(event)
        except OSError:
            self._lost()
            raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context

    async def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise states.send_type_error("send_bytes", "bytes, bytearray or memoryview", data)
            data = bytes(data)
        event = {"type": "websocket.send", "bytes": data}
        if self._app_state != CONNECTED:
            return await states.call(self, "send", event)  # type: ignore[no-any-return]
        try:
            await self._send(event)
        except OSError:
            self._lost()
            raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Compact JSON as a text frame, or as a binary frame with ``mode="binary"``."""
        event: Message
        if mode == "text":
            event = {"type": "websocket.send", "text": self._json.encode_text(data)}
        elif mode == "binary":
            event = {"type": "websocket.send", "bytes": self._json.encode_binary(data)}
        else:
            raise RuntimeError(_MODE_ERROR)
        if self._app_state != CONNECTED:
            return await states.call(self, "send", event)  # type: ignore[no-any-return]
        try:
            await self._send(event)
        except OSError:
            self._lost()
            raise WebSocketDisconnect(code=1006)  # noqa: B904 - as Starlette: the OSError is the context

    async def send(self, message: Any) -> None:
        """``send_<send_type>(message)``."""
        kind = self._send_kind
        if kind == TEXT:
            return await self.send_text(message)
        if kind == JSON:
            return await self.send_json(message)
        if kind == BYTES:
            return await self.send_bytes(message)
        return await self.send_event(message)

    # ------------------------------------------------------------------ iteration

    def __aiter__(self) -> WebSocketCore:
        return self

    def __anext__(self) -> Coroutine[Any, Any, Any]:
        # Ends with the WebSocketDisconnect itself: `async with` handles it.
        return self._typed_receive()


# --------------------------------------------------------------------------- Hub fan-out
#
# bocadillo_ws.Hub's per-member loop, twin of _codec.pyx's fan_out.


def _fan_is_coroutine(obj: Any) -> bool:
    """A coroutine as ``await`` takes it: native, or a ``@types.coroutine`` generator."""
    return type(obj) is CoroutineType or (
        type(obj) is GeneratorType and bool(obj.gi_code.co_flags & CO_ITERABLE_COROUTINE)
    )


def _fan_iterator(awaitable: Any) -> Any:
    """What ``await awaitable`` drives: the coroutine itself, else its ``__await__()``, checked as ``await`` does."""
    if _fan_is_coroutine(awaitable):
        return awaitable
    try:
        method = type(awaitable).__await__
    except AttributeError:
        raise TypeError(f"object {type(awaitable).__name__} can't be used in 'await' expression") from None
    iterator = method(awaitable)
    if _fan_is_coroutine(iterator):
        raise TypeError("__await__() returned a coroutine")
    if not hasattr(type(iterator), "__next__"):  # PyIter_Check's test
        raise TypeError(f"__await__() returned non-iterator of type '{type(iterator).__name__}'")
    return iterator


def fan_out(
    members: list[Any],
    event: Message,
    busy: Container[Any] | None,
    suspended: list[tuple[Any, Any, Any]],
    queued: list[Any],
    lost: list[tuple[Any, BaseException]],
) -> int:
    """Send ``event`` through each connected member's server ``send``; the number delivered.

    A member in ``busy`` is appended to ``queued`` (the hub queues it). A send
    that suspends goes to ``suspended`` as ``(ws, iterator, yielded)``: the
    hub's writer finishes it. A member whose send raised goes to ``lost`` as
    ``(ws, exception)``; an ``OSError`` also marks it disconnected, as a
    failed ``send`` does. ``members`` may change during the call (a server
    ``send`` may run code): the loop reads it by index.
    """
    if type(members) is not list or type(event) is not dict or type(suspended) is not list:
        raise TypeError("fan_out() takes a list of members, a dict event and lists for its results")
    if type(queued) is not list or type(lost) is not list:
        raise TypeError("fan_out() takes a list of members, a dict event and lists for its results")
    check_busy = busy is not None and len(busy) > 0  # type: ignore[arg-type]
    delivered = 0
    i = 0
    while i < len(members):
        ws = members[i]
        i += 1
        if not isinstance(ws, WebSocketCore):
            raise TypeError(f"fan_out() members must be bocadillo_ws WebSockets, got {type(ws).__name__}")
        if ws._app_state != CONNECTED:
            continue
        if check_busy and ws in busy:  # type: ignore[operator]
            queued.append(ws)
            continue
        try:
            iterator = _fan_iterator(ws._send(event))
            yielded = iterator.send(None)
        except StopIteration:
            delivered += 1
            continue
        except OSError as exc:
            ws._lost()  # as a failed send does
            lost.append((ws, exc))
            continue
        except Exception as exc:
            lost.append((ws, exc))
            continue
        suspended.append((ws, iterator, yielded))
    return delivered
