# cython: language_level=3, freethreading_compatible=False
"""Compiled backend: the twin of ``_codec_py.py``.

Same classes, same behaviour, same exceptions and messages as the pure-Python
module; any change here lands there in the same commit, and the reverse.
What differs is how: states and message kinds are C ints, events are read
with the dict C API when they are plain dicts, and the codecs are called
through C-level method slots. The message methods are CoroutineMethods
(``_awaitable.h``): each stands for ``_codec_methods``' ``async def`` of the
same name, so ``inspect.iscoroutinefunction`` and every framework's "is this
async?" check see a coroutine function, and a call returns a C awaitable
that drives the server's coroutine itself, with no Python frame between
(receives on 3.12+ excepted: see ``_C_RECEIVES``).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_1BYTE_KIND, PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_KIND, PyUnicode_READ

import sys

import ujson
from starlette.websockets import WebSocketDisconnect, WebSocketState

from . import _json_fallback as fallback
from . import _starlette_states as states
from ._message_types import MESSAGE_TYPES, message_type_code

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by the no-orjson test env
    orjson = None

cdef object _orjson_dumps = None if orjson is None else orjson.dumps
cdef object _orjson_loads = None if orjson is None else orjson.loads

# Mirror of _message_types' states (C constants, so comparisons compile to ints).
cdef enum:
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3

cdef tuple _STATES = tuple(WebSocketState)
cdef str _MODE_ERROR = 'The "mode" argument should be "text" or "binary".'

cdef object _ujson_dumps = ujson.dumps
cdef object _ujson_loads = ujson.loads


# --------------------------------------------------------------------------- codecs


cdef bint _raw_has_float_suspect(const unsigned char* text, Py_ssize_t n) noexcept:
    # "e-" or "0.0000" in one-byte text (Latin-1, or UTF-8: multi-byte
    # sequences hold no ASCII). memchr finds the rare "-" and "." fast.
    cdef const unsigned char* end = text + n
    cdef const unsigned char* p = text
    cdef const unsigned char* q
    while p < end:
        q = <const unsigned char*>memchr(p, b"-"[0], end - p)
        if q == NULL:
            break
        if q > text and (q - 1)[0] == b"e"[0]:
            return True
        p = q + 1
    p = text
    while p < end:
        q = <const unsigned char*>memchr(p, b"."[0], end - p)
        if q == NULL:
            break
        if q > text and (q - 1)[0] == b"0"[0] and end - q > 4 and q[1] == q[2] == q[3] == q[4] == b"0"[0]:
            return True
        p = q + 1
    return False


cpdef bint has_float_suspect(object text) except -1:
    # _json_fallback.has_float_suspect, in C.
    cdef int kind
    cdef void* data
    cdef Py_ssize_t i, n
    cdef Py_UCS4 c
    if type(text) is bytes:
        return _raw_has_float_suspect(<const unsigned char*>PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))
    if type(text) is not str:
        return fallback.has_float_suspect(text)
    kind = PyUnicode_KIND(text)
    data = PyUnicode_DATA(text)
    n = PyUnicode_GET_LENGTH(text)
    if kind == PyUnicode_1BYTE_KIND:
        return _raw_has_float_suspect(<const unsigned char*>data, n)
    for i in range(1, n):
        c = PyUnicode_READ(kind, data, i)
        if c == 45 and PyUnicode_READ(kind, data, i - 1) == 101:  # "e-"
            return True
        if (c == 46 and i + 4 < n and PyUnicode_READ(kind, data, i - 1) == 48  # "0.0000"
                and PyUnicode_READ(kind, data, i + 1) == 48 and PyUnicode_READ(kind, data, i + 2) == 48
                and PyUnicode_READ(kind, data, i + 3) == 48 and PyUnicode_READ(kind, data, i + 4) == 48):
            return True
    return False


cdef bint _bytes_contain(bytes text, bytes needle) noexcept:
    # needle in text, without `in` (which first tries needle as an int).
    cdef const char* p = PyBytes_AS_STRING(text)
    cdef const char* end = p + PyBytes_GET_SIZE(text)
    cdef const char* want = PyBytes_AS_STRING(needle)
    cdef Py_ssize_t m = PyBytes_GET_SIZE(needle)
    while end - p >= m:
        p = <const char*>memchr(p, want[0], end - p - m + 1)
        if p == NULL:
            return False
        if memcmp(p, want, m) == 0:
            return True
        p += 1
    return False


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
            # Positional: (ensure_ascii, encode_html_chars, escape_forward_slashes,
            # sort_keys, indent, allow_nan), ujson's order since 5.x. Keywords
            # cost ujson more than encoding a chat message.
            out = _ujson_dumps(data, False, False, False, False, 0, False)
        except (TypeError, ValueError, OverflowError):
            return fallback.dumps(data)
        if has_float_suspect(out):  # maybe a float json prints otherwise
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
            out = _orjson_dumps(data)
        except TypeError:  # orjson.JSONEncodeError; also big ints and non-str keys
            return fallback.dumps(data).encode("utf-8")
        # orjson writes NaN and Infinity as null: never send that silently.
        if _bytes_contain(out, b"null") and fallback.has_non_finite_float(data):
            raise ValueError("Out of range float values are not JSON compliant")
        if has_float_suspect(out):  # maybe a float json prints otherwise
            return fallback.fix_floats(out.decode("utf-8")).encode("utf-8")
        return out

    cpdef object decode(self, object payload):
        try:
            value = _orjson_loads(payload)
        except orjson.JSONDecodeError as exc:
            error = fallback.strict_error(exc, payload)
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
    """The connection state of ``bocadillo_ws.WebSocket``, in C fields.

    ``_codec_methods`` puts the message methods on a subclass of this type;
    the public class adds Starlette's ``WebSocket`` and the lifecycle
    helpers on top.
    """

    # HTTPConnection's one attribute, as a C field: no instance __dict__
    # unless one of its lazy properties caches into it.
    cdef public object scope
    cdef readonly object _receive
    cdef readonly object _send
    cdef readonly object _origin
    # chars, and no cdef methods (no vtable pointer): a connection object
    # is as small as Starlette's.
    cdef readonly signed char _client_state
    cdef readonly signed char _app_state
    cdef readonly signed char _receive_kind
    cdef readonly signed char _send_kind
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
        """Take the states of a framework's Starlette WebSocket (from_starlette then shares them)."""
        self._origin = origin
        self._client_state = origin.client_state.value
        self._app_state = origin.application_state.value

    def _set_states(self, signed char client, signed char app):
        """Both states as given, and nothing else (how a shared origin writes them: states.share)."""
        self._client_state = client
        self._app_state = app

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

    # Bounds-checked (the module turns checks off): _adopt() copies a state
    # from any object, so an out-of-range one is the pure twin's IndexError.
    @property
    @cython.boundscheck(True)
    @cython.wraparound(True)
    def client_state(self):
        return _STATES[self._client_state]

    @client_state.setter
    def client_state(self, state):
        self._client_state = WebSocketState(state).value
        if self._origin is not None:  # the origin writes every wrapper's
            self._origin.client_state = state

    @property
    @cython.boundscheck(True)
    @cython.wraparound(True)
    def application_state(self):
        return _STATES[self._app_state]

    @application_state.setter
    def application_state(self, state):
        self._app_state = WebSocketState(state).value
        if self._origin is not None:  # the origin writes every wrapper's
            self._origin.application_state = state


# --------------------------------------------------------------------------- the message methods
#
# receive_text, send_json, receive, send, ... are CoroutineMethods
# (_awaitable.h): coroutine functions to every introspection (each stands
# for _codec_methods' async def of the same name), whose calls return a
# MethodAwaitable. That awaitable calls _start below when first awaited,
# drives what it returns (the server's receive()/send() on the fast path,
# else a Python coroutine of the rare cases) and gives the server's event to
# _finish. No Python frame runs between the caller's await and the
# server's coroutine.


cdef extern from "Python.h":
    # Borrowed; NULL if missing, or with an error set (not for str keys of a dict).
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL


cdef extern from "_awaitable.h":
    int bws_is_iterable_coroutine(object obj) except -1  # a @types.coroutine generator, which `await` takes
    ctypedef struct BwsAwait:
        PyObject* ws
        PyObject* arg
        PyObject* arg2
        int kind
        int result
    ctypedef object (*bws_start_fn)(BwsAwait* aw)
    ctypedef object (*bws_finish_fn)(BwsAwait* aw, object event)
    ctypedef object (*bws_failed_fn)(BwsAwait* aw, object exc)
    int BWS_AS_IS, BWS_FINISH, BWS_SEND
    int bws_init_types(object core_type, bws_start_fn start, bws_finish_fn finish, bws_failed_fn failed) except -1
    object bws_coroutine_method(object function, int kind, Py_ssize_t min_args, Py_ssize_t max_args)
    object bws_await_new(object method, object ws, int kind, PyObject* arg, PyObject* arg2)
    object bws_method_awaitable_type()
    object bws_method_type()


# Message kinds, as in _message_types (TEXT, BYTES, JSON, EVENT).
cdef enum:
    TEXT = 0
    BYTES = 1
    JSON = 2
    EVENT = 3

# What a call does: receive_<kind> is its message kind, send_<kind> is
# SEND_TEXT + its kind; RECEIVE and SEND are the typed receive()/send().
cdef enum:
    SEND_TEXT = 4
    SEND_BYTES = 5
    SEND_JSON = 6
    SEND_EVENT = 7
    RECEIVE = 8
    SEND = 9

# (name, kind, positional arguments with self: least, most) of each method.
_METHOD_SHAPES = (
    ("receive_text", TEXT, 1, 1),
    ("receive_bytes", BYTES, 1, 1),
    ("receive_json", JSON, 1, 2),
    ("receive_event", EVENT, 1, 1),
    ("send_text", SEND_TEXT, 2, 2),
    ("send_bytes", SEND_BYTES, 2, 2),
    ("send_json", SEND_JSON, 2, 3),
    ("send_event", SEND_EVENT, 2, 2),
    ("receive", RECEIVE, 1, 1),
    ("send", SEND, 2, 2),
)

# Receives return a value. 3.11's `await` takes an awaitable's result through
# am_send, with no exception; 3.12+ only through a StopIteration instance
# (about 1,200 instructions a call on 3.13, callgrind), which costs more than
# the Python coroutine frame the 3.12+ interpreter runs inline. So receives
# are MethodAwaitables on 3.11 and _codec_methods' coroutines over the
# helpers below on 3.12+; sends (whose result is None) are MethodAwaitables
# everywhere.
cdef bint _C_RECEIVES = sys.version_info < (3, 12)

cdef list _methods = [None] * 10  # the CoroutineMethod of each kind (its name, for messages)
cdef tuple _receive_functions = None  # _codec_methods' receive_<kind> coroutine functions, by kind
cdef object _receive_rare = None  # _codec_methods' coroutines of the rare cases
cdef object _send_rare = None


cdef inline object _get(object event, str key):
    # event.get(key), through the dict C API for the plain dicts servers send.
    if type(event) is dict:
        return (<dict>event).get(key)
    return event.get(key)


cdef inline object _type_of(object event):
    if type(event) is dict:
        return (<dict>event)["type"]
    return event["type"]


cdef inline object _receive_payload(object event, str key, type kind):
    # event[key] for a plain-dict websocket.receive event whose event[key]
    # is exactly `kind`; None for anything else, which _finish handles.
    if type(event) is not dict:
        return None
    cdef PyObject* found = PyDict_GetItemWithError(event, "type")
    if found == NULL or (<object>found is not "websocket.receive" and <object>found != "websocket.receive"):
        return None
    found = PyDict_GetItemWithError(event, key)
    if found == NULL or type(<object>found) is not kind:
        return None
    return <object>found


cdef type _core_subclass = WebSocketCore  # the type that passed _core() last


cdef inline WebSocketCore _core(object ws):
    # A typed argument would walk the (long) MRO on every call: one compare instead.
    global _core_subclass
    if type(ws) is not _core_subclass:
        if not isinstance(ws, WebSocketCore):
            raise TypeError(f"expected a WebSocketCore, got {type(ws).__name__}")
        _core_subclass = type(ws)
    return <WebSocketCore>ws


cdef object _unpack(WebSocketCore ws, int kind, object event):
    # A receive's result from an event Starlette's state checks accepted.
    if kind == TEXT:
        text = _get(event, "text")
        if type(text) is str:
            return text
        return states.raise_for_payload(event, "text")
    if kind == BYTES:
        data = _get(event, "bytes")
        if type(data) is bytes:
            return data
        return states.raise_for_payload(event, "bytes")
    if kind == JSON:
        payload = _get(event, "text")
        if type(payload) is not str:
            payload = _get(event, "bytes")
            if type(payload) is not bytes:
                payload = states.raise_for_payload(event, "json")
        return _json_of(ws).decode(payload)
    return event  # EVENT


cdef object _text_event(object data):
    if not isinstance(data, str):
        raise states.send_type_error("send_text", "str", data)
    return {"type": "websocket.send", "text": data}


cdef object _bytes_event(object data):
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise states.send_type_error("send_bytes", "bytes, bytearray or memoryview", data)
        data = bytes(data)
    return {"type": "websocket.send", "bytes": data}


cdef inline JSONCodec _json_of(WebSocketCore core):
    # A cpdef call through None would read None as a codec: an instance never
    # bound (made with __new__ alone) fails as the pure twin's does.
    if core._json is None:
        raise AttributeError(f"'{type(core).__name__}' object has no attribute '_json'")
    return core._json


cdef object _json_event(WebSocketCore core, object data, object mode):
    if mode == "text":
        return {"type": "websocket.send", "text": _json_of(core).encode_text(data)}
    if mode == "binary":
        return {"type": "websocket.send", "bytes": _json_of(core).encode_binary(data)}
    raise RuntimeError(_MODE_ERROR)


cdef inline object _arg(PyObject* arg, object default):
    return default if arg == NULL else <object>arg


cdef object _start_receive(BwsAwait* aw, WebSocketCore core, int kind):
    # The twin's receive_<kind> up to its await of the server's receive().
    ws = <object>aw.ws
    if kind == JSON:
        mode = _arg(aw.arg, "text")
        if mode != "text" and mode != "binary":
            raise RuntimeError(_MODE_ERROR)
    if kind == EVENT:
        if core._client_state == CONNECTED:
            aw.result = BWS_FINISH
            return core._receive()
        return states.call(ws, "receive")
    if core._app_state == CONNECTED and core._client_state == CONNECTED:
        aw.result = BWS_FINISH
        return core._receive()
    if kind == JSON:
        return _receive_rare(ws, kind, "receive_json", mode)
    return _receive_rare(ws, kind, "receive_text" if kind == TEXT else "receive_bytes")


cdef object _start_send(BwsAwait* aw, WebSocketCore core, int kind):
    # The twin's send_<kind> up to its await of the server's send().
    ws = <object>aw.ws
    data = <object>aw.arg
    if kind == SEND_TEXT:
        if core._app_state != CONNECTED or type(data) is not str:
            return _send_rare(ws, _text_event(data))
        event = {"type": "websocket.send", "text": data}
    elif kind == SEND_BYTES:
        if core._app_state != CONNECTED or type(data) is not bytes:
            return _send_rare(ws, _bytes_event(data))
        event = {"type": "websocket.send", "bytes": data}
    elif kind == SEND_JSON:
        event = _json_event(core, data, _arg(aw.arg2, "text"))
        if core._app_state != CONNECTED:
            return _send_rare(ws, event)
    else:  # SEND_EVENT
        event = data
        if core._app_state != CONNECTED or event["type"] != "websocket.send":
            return states.call(ws, "send", event)
    aw.result = BWS_SEND
    return core._send(event)


cdef object _start(BwsAwait* aw):
    cdef WebSocketCore core = <WebSocketCore><object>aw.ws  # the call checked its type
    cdef int kind = aw.kind
    if kind == RECEIVE:
        kind = aw.kind = core._receive_kind
    elif kind == SEND:
        kind = aw.kind = SEND_TEXT + core._send_kind
    if kind < SEND_TEXT:
        return _start_receive(aw, core, kind)
    return _start_send(aw, core, kind)


cdef object _finish(BwsAwait* aw, object event):
    # A receive's result from what the server's receive() returned.
    cdef int kind = aw.kind
    cdef object value
    if kind == TEXT:
        value = _receive_payload(event, "text", str)
        if value is not None:
            return value
    elif kind == BYTES:
        value = _receive_payload(event, "bytes", bytes)
        if value is not None:
            return value
    cdef WebSocketCore core = <WebSocketCore><object>aw.ws
    if _type_of(event) != "websocket.receive":
        event = states.replay_receive(core, event)
    return _unpack(core, kind, event)


cdef object _send_failed(BwsAwait* aw, object exc):
    # As Starlette: an OSError from the server's send is a lost connection.
    _lost(<WebSocketCore><object>aw.ws)
    instead = WebSocketDisconnect(code=1006)
    instead.__context__ = exc
    return instead


cdef int _lost(WebSocketCore core) except -1:
    core._app_state = DISCONNECTED
    if core._origin is not None:
        core._origin.application_state = WebSocketState.DISCONNECTED
    return 0


bws_init_types(WebSocketCore, _start, _finish, _send_failed)
CoroutineMethod = bws_method_type()
MethodAwaitable = bws_method_awaitable_type()


cdef tuple _ARGUMENTS = tuple(sorted((kind, name, least - 1, most - 1) for name, kind, least, most in _METHOD_SHAPES))


def awaitable(ws, int kind, *args):
    """The awaitable of the call of kind ``kind`` (the general path of the methods), with its arguments after self."""
    if not 0 <= kind < 10:
        raise ValueError(f"no method call of kind {kind}")
    _, name, least, most = _ARGUMENTS[kind]
    if not least <= len(args) <= most:  # the C awaitable reads exactly these
        expected = f"{least} to {most}" if least != most else f"{least}"
        raise TypeError(f"awaitable(): a {name}() call takes {expected} arguments after self, got {len(args)}")
    _core(ws)
    cdef PyObject* arg = NULL
    cdef PyObject* arg2 = NULL
    if len(args) > 0:
        arg = <PyObject*>args[0]
    if len(args) > 1:
        arg2 = <PyObject*>args[1]
    return bws_await_new(_methods[kind], ws, kind, arg, arg2)


cdef object _typed_receive(object ws):
    cdef WebSocketCore core = _core(ws)
    if _C_RECEIVES:
        return bws_await_new(_methods[core._receive_kind], ws, core._receive_kind, NULL, NULL)
    return _receive_functions[core._receive_kind](ws)


def typed_anext(self):
    """``__anext__``: the awaitable of ``receive_<receive_type>()`` (a method: it binds)."""
    return _typed_receive(self)


@cython.binding(False)
@cython.always_allow_keywords(False)
def typed_receive(ws):
    """The awaitable of ``receive_<receive_type>()``."""
    return _typed_receive(ws)


def coroutine_methods(dict functions not None, receive_rare, send_rare):
    """The class's message methods from _codec_methods' coroutine functions ({name: function})."""
    global _receive_rare, _send_rare, _receive_functions
    _receive_rare, _send_rare = receive_rare, send_rare
    _receive_functions = tuple(functions[f"receive_{kind}"] for kind in ("text", "bytes", "json", "event"))
    methods = {}
    for name, kind, least, most in _METHOD_SHAPES:
        _methods[kind] = bws_coroutine_method(functions[name], kind, least, most)
        if _C_RECEIVES or SEND_TEXT <= kind <= SEND_EVENT or kind == SEND:
            methods[name] = _methods[kind]
        else:
            methods[name] = functions[name]
    return methods


# The helpers of _codec_methods' receive coroutines: builtins (binding=False)
# taking one positional argument where they can (METH_O), which the
# specialising interpreter calls without a lookup on the instance (an
# instance of a Python subclass of a C type has no inline attribute values,
# so a method or property load on it is not specialised).


@cython.binding(False)
@cython.always_allow_keywords(False)
def receive_now(ws):
    """The server's receive() when both sides are connected (a typed receive's fast path), else None."""
    cdef WebSocketCore core = _core(ws)
    if core._app_state == CONNECTED and core._client_state == CONNECTED:
        return core._receive
    return None


@cython.binding(False)
@cython.always_allow_keywords(False)
def client_receive_now(ws):
    """The server's receive() when the client side is connected (receive_event's fast path), else None."""
    cdef WebSocketCore core = _core(ws)
    if core._client_state == CONNECTED:
        return core._receive
    return None


@cython.binding(False)
@cython.always_allow_keywords(False)
def text_of(event):
    """The text of a websocket.receive event, or None: then received(ws, TEXT, event)."""
    return _receive_payload(event, "text", str)


@cython.binding(False)
@cython.always_allow_keywords(False)
def bytes_of(event):
    """The bytes of a websocket.receive event, or None: then received(ws, BYTES, event)."""
    return _receive_payload(event, "bytes", bytes)


cdef inline object _received(WebSocketCore core, int kind, object event):
    # Any event the server's receive() returned: Starlette's checks for the rare ones, then the payload.
    if _type_of(event) != "websocket.receive":
        event = states.replay_receive(core, event)
    return _unpack(core, kind, event)


@cython.binding(False)
def received(ws, int kind, event):
    """A receive_<kind>'s result (a _message_types code) from what the server's receive() returned."""
    cdef WebSocketCore core = _core(ws)
    if not 0 <= kind < 4:
        raise ValueError(f"no message kind {kind}")
    return _received(core, kind, event)


@cython.binding(False)
def typed_received(ws, event):
    """receive()'s result: received(ws, <its receive kind>, event), one call for the dispatch."""
    cdef WebSocketCore core = _core(ws)
    return _received(core, core._receive_kind, event)


@cython.binding(False)
@cython.always_allow_keywords(False)
def connection_lost(ws):
    """The transport failed: Starlette marks the application side closed."""
    _lost(_core(ws))


@cython.binding(False)
def unpacked(ws, int kind, event):
    """A receive_<kind>'s result from an event Starlette's own receive() returned."""
    if not 0 <= kind < 4:
        raise ValueError(f"no message kind {kind}")
    return _unpack(_core(ws), kind, event)


from ._codec_methods import with_methods  # noqa: E402 - needs the functions above

# The module's WebSocketCore becomes the subclass with the methods (the C
# type's name is bound at compile time: assign through globals()).
globals()["WebSocketCore"] = with_methods(WebSocketCore, sys.modules[__name__])


# --------------------------------------------------------------------------- Hub fan-out
#
# bocadillo_ws.Hub's per-member loop, twin of _codec_py.fan_out.

from cpython.ref cimport Py_XDECREF  # noqa: E402 - this section's own

cdef extern from "Python.h":
    # Renamed C declarations so they never clash with the module's own.
    int _fan_iter_send "PyIter_Send"(object iterator, object value, PyObject** result) except -1
    bint _fan_coro_check "PyCoro_CheckExact"(object obj)
    bint _fan_iter_check "PyIter_Check"(object obj)
    Py_ssize_t _fan_list_size "PyList_GET_SIZE"(object lst)
    PyObject* _fan_list_item "PyList_GET_ITEM"(object lst, Py_ssize_t i)

cdef enum:
    _FAN_CONNECTED = 1  # _app_state value (Starlette's WebSocketState)
    _FAN_PYGEN_RETURN = 0  # PyIter_Send: the iterator returned (PYGEN_NEXT = 1: it yielded)

cdef type _fan_core_type = WebSocketCore  # the member type that passed the check last


cdef inline WebSocketCore _fan_member(object ws):
    global _fan_core_type
    if type(ws) is not _fan_core_type:
        if not isinstance(ws, WebSocketCore):
            raise TypeError(f"fan_out() members must be bocadillo_ws WebSockets, got {type(ws).__name__}")
        _fan_core_type = type(ws)
    return <WebSocketCore>ws


cdef object _fan_iterator(object awaitable):
    # What `await awaitable` drives: the coroutine itself (a generator-based
    # one too, as `await` takes it), else its __await__(), checked as `await` does.
    if _fan_coro_check(awaitable) or bws_is_iterable_coroutine(awaitable):
        return awaitable
    try:
        method = type(awaitable).__await__
    except AttributeError:
        raise TypeError(f"object {type(awaitable).__name__} can't be used in 'await' expression") from None
    iterator = method(awaitable)
    if _fan_coro_check(iterator) or bws_is_iterable_coroutine(iterator):
        raise TypeError("__await__() returned a coroutine")
    if not _fan_iter_check(iterator):
        raise TypeError(f"__await__() returned non-iterator of type '{type(iterator).__name__}'")
    return iterator


def fan_out(members, event, busy, suspended, queued, lost):
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
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t delivered = 0
    cdef PyObject* result = NULL
    cdef int status
    cdef WebSocketCore core
    cdef bint check_busy = busy is not None and len(busy) > 0
    while i < _fan_list_size(members):
        ws = <object>_fan_list_item(members, i)
        i += 1
        core = _fan_member(ws)
        if core._app_state != _FAN_CONNECTED:
            continue
        if check_busy and ws in busy:
            queued.append(ws)
            continue
        try:
            iterator = _fan_iterator(core._send(event))
            result = NULL
            status = _fan_iter_send(iterator, None, &result)
        except OSError as exc:
            _lost(core)  # as a failed send does
            lost.append((ws, exc))
            continue
        except Exception as exc:
            lost.append((ws, exc))
            continue
        if status == _FAN_PYGEN_RETURN:
            Py_XDECREF(result)
            delivered += 1
        else:
            yielded = <object>result
            Py_XDECREF(result)
            suspended.append((ws, iterator, yielded))
    return delivered
