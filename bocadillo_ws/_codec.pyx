# cython: language_level=3, freethreading_compatible=False
"""Compiled backend: the twin of ``_codec_py.py``.

Same classes, same behaviour, same exceptions and messages as the pure-Python
module; any change here lands there in the same commit, and the reverse.
What differs is how: states and message kinds are C ints, events are read
with the dict C API when they are plain dicts, and the codecs are called
through C-level method slots.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject_Call
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_KIND, PyUnicode_READ

import ujson
from starlette.websockets import WebSocketDisconnect, WebSocketState

from . import _json_fallback as fallback
from . import _starlette_states as states
from ._message_types import MESSAGE_TYPES, message_type_code

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by the no-orjson test env
    orjson = None

# Mirrors of _message_types (C constants, so comparisons compile to ints).
cdef enum:
    TEXT = 0
    BYTES = 1
    JSON = 2
    EVENT = 3

cdef enum:
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3

cdef tuple _STATES = tuple(WebSocketState)
cdef str _MODE_ERROR = 'The "mode" argument should be "text" or "binary".'

cdef object _ujson_dumps = ujson.dumps
cdef object _ujson_loads = ujson.loads
# Built once: Cython would otherwise build this dict on every call.
cdef dict _UJSON_DUMPS_OPTIONS = {
    "ensure_ascii": False,
    "escape_forward_slashes": False,
    "allow_nan": False,
}


cdef inline object _get(object event, str key):
    # event.get(key), through the dict C API for the plain dicts servers send.
    if type(event) is dict:
        return (<dict>event).get(key)
    return event.get(key)


cdef inline object _type_of(object event):
    if type(event) is dict:
        return (<dict>event)["type"]
    return event["type"]


# --------------------------------------------------------------------------- codecs


cdef Py_ssize_t _RUN = fallback.LONG_DIGIT_RUN


cdef inline bint _is_digit(Py_UCS4 c) noexcept:
    return (<unsigned int>c) - 48u < 10u  # unsigned: below "0" wraps around


cpdef bint has_long_digit_run(object payload) except -1:
    # _json_fallback.has_long_digit_run, in C. A run of _RUN digits covering
    # position i needs payload[i] to be a digit, so probe every _RUN-th
    # character and only look around the digits found.
    cdef Py_ssize_t n, i, j, k
    cdef const unsigned char* raw
    cdef int kind
    cdef void* data
    if type(payload) is not str:
        if type(payload) is not bytes:
            return fallback.has_long_digit_run(payload)
        raw = <const unsigned char*>PyBytes_AS_STRING(payload)
        n = PyBytes_GET_SIZE(payload)
        i = _RUN - 1
        while i < n:
            if not _is_digit(raw[i]):
                i += _RUN
                continue
            j = i - 1
            while j > i - _RUN and _is_digit(raw[j]):
                j -= 1
            k = i + 1
            while k < n and _is_digit(raw[k]):
                k += 1
            if k - j - 1 >= _RUN:
                return True
            i = k + _RUN
        return False
    kind = PyUnicode_KIND(payload)
    data = PyUnicode_DATA(payload)
    n = PyUnicode_GET_LENGTH(payload)
    i = _RUN - 1
    while i < n:
        if not _is_digit(PyUnicode_READ(kind, data, i)):
            i += _RUN
            continue
        j = i - 1
        while j > i - _RUN and _is_digit(PyUnicode_READ(kind, data, j)):
            j -= 1
        k = i + 1
        while k < n and _is_digit(PyUnicode_READ(kind, data, k)):
            k += 1
        if k - j - 1 >= _RUN:
            return True
        i = k + _RUN
    return False


cdef class JSONCodec:
    """How one connection turns values into JSON and back."""

    name = "abstract"

    cpdef object encode_text(self, object data):
        raise NotImplementedError

    cpdef object encode_binary(self, object data):
        return self.encode_text(data).encode("utf-8")

    cpdef object decode(self, object payload):
        raise NotImplementedError


cdef class UJSONCodec(JSONCodec):
    """ujson for speed; the standard library for exact errors and the odd input."""

    name = "ujson"

    cpdef object encode_text(self, object data):
        try:
            out = PyObject_Call(_ujson_dumps, (data,), _UJSON_DUMPS_OPTIONS)
        except (TypeError, ValueError, OverflowError):
            return fallback.dumps(data)
        if "e-" in out or "0.0000" in out:  # maybe a float json prints otherwise
            return fallback.fix_floats(out)
        return out

    cpdef object decode(self, object payload):
        # Decode bytes ourselves: ujson.loads(bytes) accepts CESU-8 surrogates.
        text = payload if isinstance(payload, str) else fallback.decode_utf8(payload)
        try:
            return _ujson_loads(text)
        except (ValueError, TypeError):
            pass
        return fallback.loads(text)


cdef class StdlibJSONCodec(JSONCodec):
    """The standard library's ``json``, exactly as Starlette uses it."""

    name = "json"

    cpdef object encode_text(self, object data):
        return fallback.dumps(data)

    cpdef object decode(self, object payload):
        text = payload if isinstance(payload, str) else fallback.decode_utf8(payload)
        return fallback.loads(text)


cdef class OrjsonCodec(JSONCodec):
    """orjson: strict RFC 8259, UTF-8 bytes natively."""

    name = "orjson"

    def __init__(self):
        if orjson is None:
            raise ImportError(fallback.ORJSON_MISSING)

    cpdef object encode_text(self, object data):
        return self.encode_binary(data).decode("utf-8")

    cpdef object encode_binary(self, object data):
        try:
            out = orjson.dumps(data)
        except TypeError:  # orjson.JSONEncodeError; also big ints and non-str keys
            return fallback.dumps(data).encode("utf-8")
        # orjson writes NaN and Infinity as null: never send that silently.
        if b"null" in out and fallback.has_non_finite_float(data):
            raise ValueError("Out of range float values are not JSON compliant")
        if b"e-" in out or b"0.0000" in out:  # maybe a float json prints otherwise
            return fallback.fix_floats(out.decode("utf-8")).encode("utf-8")
        return out

    cpdef object decode(self, object payload):
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            error = fallback.invalid_json(exc, exc.doc)
        else:
            if has_long_digit_run(payload):  # maybe an int orjson made a float
                return fallback.exact_loads(payload)
            return value
        raise error


cdef class CustomJSONCodec(JSONCodec):
    """Any object with ``dumps(obj) -> str | bytes`` and ``loads(str | bytes)``."""

    name = "custom"
    cdef readonly object codec

    def __init__(self, codec):
        self.codec = codec

    cpdef object encode_text(self, object data):
        return fallback.custom_text(self._dumps(data), self.codec)

    cpdef object encode_binary(self, object data):
        return fallback.custom_bytes(self._dumps(data), self.codec)

    cdef object _dumps(self, object data):
        try:
            return self.codec.dumps(data)
        except RecursionError:
            pass
        raise ValueError(f"{fallback.TOO_DEEP} while encoding JSON")

    cpdef object decode(self, object payload):
        text = payload if isinstance(payload, str) else fallback.decode_utf8(payload)
        try:
            return self.codec.loads(text)
        except (ValueError, RecursionError) as exc:
            error = fallback.invalid_json(exc, text)
        raise error


_NAMED_CODECS = {
    "ujson": UJSONCodec,
    "orjson": OrjsonCodec,
    "json": StdlibJSONCodec,
}


def make_json_codec(spec="ujson"):
    """The codec for ``json_codec=spec``: a name or an object with dumps()/loads()."""
    return fallback.resolve(spec, _NAMED_CODECS, CustomJSONCodec)


# --------------------------------------------------------------------------- the connection


cdef class WebSocketCore:
    """The message hot path of ``bocadillo_ws.WebSocket``.

    The public class adds Starlette's ``HTTPConnection`` attributes and the
    lifecycle helpers on top; this part receives, sends and dispatches.
    """

    cdef readonly object _receive
    cdef readonly object _send
    cdef readonly object _origin
    cdef readonly int _client_state
    cdef readonly int _app_state
    cdef int _receive_kind
    cdef int _send_kind
    cdef JSONCodec _json
    cdef public bint catch_disconnect

    def _bind(self, receive, send, receive_type, send_type, catch_disconnect, json_codec):
        self._receive_kind = message_type_code(receive_type, "receive_type")
        self._send_kind = message_type_code(send_type, "send_type")
        self._json = make_json_codec(json_codec)
        self._receive = receive
        self._send = send
        self._origin = None
        self._client_state = self._app_state = CONNECTING
        self.catch_disconnect = bool(catch_disconnect)

    def _adopt(self, origin):
        """Take over the state of a framework's Starlette WebSocket, and keep it updated."""
        self._origin = origin
        self._client_state = origin.client_state.value
        self._app_state = origin.application_state.value

    # ------------------------------------------------------------------ attributes

    @property
    def receive_type(self):
        return MESSAGE_TYPES[self._receive_kind]

    @property
    def send_type(self):
        return MESSAGE_TYPES[self._send_kind]

    @property
    def json_codec(self):
        return self._json.name

    @property
    def client_state(self):
        return _STATES[self._client_state]

    @client_state.setter
    def client_state(self, state):
        self._client_state = WebSocketState(state).value

    @property
    def application_state(self):
        return _STATES[self._app_state]

    @application_state.setter
    def application_state(self, state):
        self._app_state = WebSocketState(state).value

    # ------------------------------------------------------------------ raw events

    async def receive_event(self):
        """The next ASGI event, with Starlette's state checks."""
        if self._client_state == CONNECTED:
            event = await self._receive()
            if _type_of(event) == "websocket.receive":
                return event
            return await states.replay_receive(self, event)
        return await states.call(self, "receive")

    async def send_event(self, event):
        """Send an ASGI event, with Starlette's state checks."""
        if self._app_state == CONNECTED and _type_of(event) == "websocket.send":
            try:
                await self._send(event)
            except OSError:
                self._lost()
                raise WebSocketDisconnect(code=1006)
            return
        await states.call(self, "send", event)

    cdef void _lost(self):
        # The transport failed: Starlette marks the application side closed.
        self._app_state = DISCONNECTED
        if self._origin is not None:
            self._origin.application_state = WebSocketState.DISCONNECTED

    # ------------------------------------------------------------------ typed receive

    async def receive_text(self):
        if self._app_state != CONNECTED:
            return await states.call(self, "receive_text")
        if self._client_state == CONNECTED:
            event = await self._receive()
            if _type_of(event) != "websocket.receive":
                event = await states.replay_receive(self, event)
        else:
            event = await states.call(self, "receive")
        text = _get(event, "text")
        if type(text) is str:
            return text
        return states.raise_for_payload(event, "text")

    async def receive_bytes(self):
        if self._app_state != CONNECTED:
            return await states.call(self, "receive_bytes")
        if self._client_state == CONNECTED:
            event = await self._receive()
            if _type_of(event) != "websocket.receive":
                event = await states.replay_receive(self, event)
        else:
            event = await states.call(self, "receive")
        data = _get(event, "bytes")
        if type(data) is bytes:
            return data
        return states.raise_for_payload(event, "bytes")

    async def receive_json(self, mode="text"):
        """The next frame's payload parsed as JSON; text and binary frames both work."""
        if mode != "text" and mode != "binary":
            raise RuntimeError(_MODE_ERROR)
        if self._app_state != CONNECTED:
            return await states.call(self, "receive_json", mode)
        if self._client_state == CONNECTED:
            event = await self._receive()
            if _type_of(event) != "websocket.receive":
                event = await states.replay_receive(self, event)
        else:
            event = await states.call(self, "receive")
        payload = _get(event, "text")
        if type(payload) is not str:
            payload = _get(event, "bytes")
            if type(payload) is not bytes:
                payload = states.raise_for_payload(event, "json")
        return self._json.decode(payload)

    async def receive(self):
        """``receive_<receive_type>()``."""
        cdef int kind = self._receive_kind
        if kind == TEXT:
            return await self.receive_text()
        if kind == JSON:
            return await self.receive_json()
        if kind == BYTES:
            return await self.receive_bytes()
        return await self.receive_event()

    # ------------------------------------------------------------------ typed send

    async def send_text(self, data):
        if not isinstance(data, str):
            raise states.send_type_error("send_text", "str", data)
        event = {"type": "websocket.send", "text": data}
        if self._app_state != CONNECTED:
            return await states.call(self, "send", event)
        try:
            await self._send(event)
        except OSError:
            self._lost()
            raise WebSocketDisconnect(code=1006)

    async def send_bytes(self, data):
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise states.send_type_error("send_bytes", "bytes, bytearray or memoryview", data)
            data = bytes(data)
        event = {"type": "websocket.send", "bytes": data}
        if self._app_state != CONNECTED:
            return await states.call(self, "send", event)
        try:
            await self._send(event)
        except OSError:
            self._lost()
            raise WebSocketDisconnect(code=1006)

    async def send_json(self, data, mode="text"):
        """Compact JSON as a text frame, or as a binary frame with ``mode="binary"``."""
        if mode == "text":
            event = {"type": "websocket.send", "text": self._json.encode_text(data)}
        elif mode == "binary":
            event = {"type": "websocket.send", "bytes": self._json.encode_binary(data)}
        else:
            raise RuntimeError(_MODE_ERROR)
        if self._app_state != CONNECTED:
            return await states.call(self, "send", event)
        try:
            await self._send(event)
        except OSError:
            self._lost()
            raise WebSocketDisconnect(code=1006)

    async def send(self, message):
        """``send_<send_type>(message)``."""
        cdef int kind = self._send_kind
        if kind == TEXT:
            return await self.send_text(message)
        if kind == JSON:
            return await self.send_json(message)
        if kind == BYTES:
            return await self.send_bytes(message)
        return await self.send_event(message)

    # ------------------------------------------------------------------ iteration

    def __aiter__(self):
        return self

    async def __anext__(self):
        # Ends with the WebSocketDisconnect itself: `async with` handles it.
        return await self.receive()
