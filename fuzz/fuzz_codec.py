"""Coverage-guided differential fuzzing of the compiled backend against the pure one (atheris).

    python fuzz/fuzz_codec.py fuzz/corpus fuzz/seeds -artifact_prefix=fuzz/crashes/ -max_total_time=600
    python fuzz/fuzz_codec.py --replay fuzz/crashes/*      # no atheris needed

(fuzz/README.md has the set-up.) Each input is read as a little program
(``Reader``): an operation, a JSON codec (ujson / orjson / json), an event
shape, and payload bytes. The operation runs on a fresh connection of each
backend over an in-memory transport that never suspends (one
``coro.send(None)``), and the two outcomes must be the same: the value
returned (NaN-normalised), or the exception's type, message and code; plus
every ASGI event sent and the final connection states. Any difference raises
``Mismatch`` and atheris keeps the input under ``fuzz/crashes/``.

Operations:

- receive: a ``websocket.receive`` event built from the payload in one of
  the server shapes (text decoded with ``surrogatepass`` or ``replace``;
  bytes; the other key ``None``; both keys ``None``; both set; malformed:
  payloads of the wrong type, a disconnect with a fuzzed code, an unknown
  event type), through ``receive_text`` / ``receive_bytes`` /
  ``receive_json`` (both modes) / ``receive()`` for every ``value_type`` /
  ``receive_event`` / ``async for``;
- a sequence of 2-4 such events on one connection (state transitions:
  a disconnect, then a receive, is Starlette's state error);
- send: ``send_json`` (both modes) of a value decoded from the input
  (the payload parsed as JSON when it is JSON, else a value built from the
  bytes: nesting, big ints, any float bits, lone surrogates, the odd
  unserialisable object), ``send_text`` / ``send_bytes`` / ``send()``;
- a round trip: what ``send_json`` sent, received back with ``receive_json``.

Besides agreeing with each other, the backends must keep the contract:
only the documented exception types (never a ``RecursionError``, a
``KeyError``, a ``SystemError``); ``send_json`` of ordinary data writes
exactly Starlette's wire text (``json.dumps(separators=(",", ":"),
ensure_ascii=False)``); and where the standard library parses a payload,
the ujson and json codecs give its value (orjson may refuse what RFC 8259
refuses, as documented).

Coverage: the Python modules of ``bocadillo_ws`` (the pure twin and the
shared state machine / JSON fallback) are instrumented by atheris. The
compiled module's own branches guide the fuzzer only when the extension was
built with ``-fsanitize=fuzzer-no-link`` (fuzz/README.md); otherwise the
compiled side is still run and compared on every input, just not measured.

``BOCADILLO_WS_SRC`` is the tree whose ``bocadillo_ws`` (with its compiled
``_codec``) is imported; without it, the installed ``bocadillo_ws`` if there
is one, else this repository's (built in place by ``pip install -e .``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import struct
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(os.environ.get("BOCADILLO_WS_SRC", str(ROOT)))

CODECS = ("ujson", "orjson", "json")
KINDS = ("text", "bytes", "json", "event")
SCOPE: dict[str, Any] = {
    "type": "websocket",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "scheme": "ws",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "root_path": "",
    "path": "/fuzz",
    "raw_path": b"/fuzz",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000")],
    "subprotocols": [],
    "extensions": {"websocket.http.response": {}},
}


class Mismatch(AssertionError):
    """The backends disagree, or one of them broke the contract."""


# --------------------------------------------------------------------------- backends


class Backends:
    """Both public WebSocket classes, built like tests/conftest.py builds them."""

    def __init__(self) -> None:
        # BOCADILLO_WS_SRC wins; otherwise an installed bocadillo_ws (tox's
        # wheel, the dev venv's editable install), else this repository.
        if "BOCADILLO_WS_SRC" in os.environ or importlib.util.find_spec("bocadillo_ws") is None:
            sys.path.insert(0, str(SRC))
        from bocadillo_ws import InvalidJSON, UnexpectedMessageType, WebSocketDisconnect, _codec, _codec_py
        from bocadillo_ws._websocket import WebSocketAPI

        self.compiled = type("WebSocket", (WebSocketAPI, _codec.WebSocketCore), {"__module__": __name__})
        self.pure = type("WebSocket", (WebSocketAPI, _codec_py.WebSocketCore), {"__module__": __name__})
        self.module_file = _codec.__file__
        self.receive_errors = (UnexpectedMessageType, InvalidJSON, WebSocketDisconnect, RuntimeError)
        self.InvalidJSON = InvalidJSON


BACKENDS: Backends | None = None


def backends() -> Backends:
    global BACKENDS
    if BACKENDS is None:
        BACKENDS = Backends()
    return BACKENDS


# --------------------------------------------------------------------------- reading the input


class Reader:
    """Consumes the fuzz input; past its end every read is zero or empty (deterministic)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def pick(self, n: int) -> int:
        return self.byte() % n

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def sized(self) -> bytes:
        """A length byte (0-254; 255 means "all the rest"), then that many bytes."""
        n = self.byte()
        return self.rest() if n == 255 else self.take(n)

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def text(self, raw: bytes) -> str:
        how = self.pick(4)
        if how == 0:
            return raw.decode("utf-8", "surrogatepass") if _valid_surrogatepass(raw) else raw.decode("utf-8", "replace")
        if how == 1:
            return raw.decode("utf-8", "replace")
        if how == 2:
            return raw.decode("latin-1")
        return raw.decode("utf-16-le", "surrogatepass") if len(raw) % 2 == 0 else raw.decode("utf-8", "replace")


def _valid_surrogatepass(raw: bytes) -> bool:
    try:
        raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return True


SPECIAL_FLOATS = (1e-05, 1.5e-07, 0.0001, 5e-324, -0.0, 1e16, 1e22, 12345678901234567.0, 0.1, 1e300, 2.5e-300)


def build_value(r: Reader, depth: int = 0, budget: list[int] | None = None) -> Any:
    """A value for send_json, mostly JSON-native, read from the input."""
    budget = budget if budget is not None else [64]
    budget[0] -= 1
    kind = r.pick(14) if budget[0] > 0 else r.pick(7)
    if kind == 0:
        return None
    if kind == 1:
        return r.byte() % 2 == 0
    if kind == 2:
        return struct.unpack("b", bytes([r.byte()]))[0]
    if kind == 3:  # an int of up to 255 bytes: past 64 bits, past orjson, past 4300 digits rarely
        raw = r.sized()
        value = int.from_bytes(raw, "little")
        return -value if r.byte() % 2 else value
    if kind == 4:  # any double, NaN and infinities included
        raw = r.take(8).ljust(8, b"\0")
        return struct.unpack("<d", raw)[0]
    if kind == 5:
        return SPECIAL_FLOATS[r.pick(len(SPECIAL_FLOATS))] * (-1 if r.byte() % 2 else 1)
    if kind == 6:
        return r.text(r.sized())
    if kind in (7, 8, 9):
        return [build_value(r, depth + 1, budget) for _ in range(r.pick(5))]
    if kind in (10, 11):
        return {r.text(r.take(r.pick(6))): build_value(r, depth + 1, budget) for _ in range(r.pick(5))}
    if kind == 12:  # deep nesting: 0-2550 levels
        levels = r.byte() * 10
        value: Any = build_value(r, depth + 1, budget)
        for _ in range(levels):
            value = [value] if r.byte() % 2 else {"k": value}
        return value
    odd = r.pick(6)  # the unserialisable or non-native
    return [{1, 2}, (1, "t"), b"bytes", object(), {1: "int key"}, {(1, 2): 0}][odd]


def json_native(value: Any, depth: int = 0) -> bool:
    """Ordinary data (contract §4): str keys; str, int, finite float, bool, None, list, dict."""
    if depth > 200:  # deep values are the nesting rows, not "ordinary data"
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return type(value) in (bool, int, str, type(None))
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(json_native(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and json_native(v, depth + 1) for k, v in value.items())
    return False


def build_event(r: Reader) -> dict[str, Any]:
    shape = r.pick(12)
    raw = r.sized()
    if shape == 0:
        return {"type": "websocket.receive", "text": r.text(raw)}
    if shape == 1:
        return {"type": "websocket.receive", "text": r.text(raw), "bytes": None}
    if shape == 2:
        return {"type": "websocket.receive", "bytes": raw}
    if shape == 3:
        return {"type": "websocket.receive", "bytes": raw, "text": None}
    if shape == 4:
        return {"type": "websocket.receive", "text": None, "bytes": None}
    if shape == 5:
        return {"type": "websocket.receive", "text": r.text(raw), "bytes": raw}
    if shape == 6:  # payloads of the wrong type
        bad: list[Any] = [raw, bytearray(raw), len(raw), r.text(raw), memoryview(raw), [raw]]
        return {"type": "websocket.receive", ["text", "bytes"][r.pick(2)]: bad[r.pick(len(bad))]}
    if shape == 7:
        event: dict[str, Any] = {"type": "websocket.disconnect"}
        if r.byte() % 2:
            event["code"] = 1000 + r.byte() * 16
        if r.byte() % 2:
            event["reason"] = r.text(raw)
        return event
    if shape == 8:
        return {"type": ["websocket.connect", "http.request", "websocket.send", ""][r.pick(4)], "text": r.text(raw)}
    if shape == 9:  # a bytearray or str subclass payload: the slow path
        return {"type": "websocket.receive", "bytes": bytearray(raw)}
    if shape == 10:
        return {"type": "websocket.receive"}
    return {"type": "websocket.receive", "text": r.text(raw), "extra": raw}


# --------------------------------------------------------------------------- running one operation


class Transport:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.inbox = [{"type": "websocket.connect"}, *events]
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.inbox:
            raise LookupError("the fuzz transport has no more events")
        return self.inbox.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise Mismatch("a coroutine suspended on an in-memory transport")


Operation = Callable[[Any], Coroutine[Any, Any, Any]]


def outcome(cls: type[Any], events: list[dict[str, Any]], steps: list[Operation], options: dict[str, Any]) -> Any:
    transport = Transport([dict(e) for e in events])
    ws = cls(dict(SCOPE), transport.receive, transport.send, **options)
    drive(ws.accept())
    results: list[Any] = []
    for step in steps:
        try:
            results.append(("value", drive(step(ws))))
        except LookupError:
            raise
        except Exception as exc:
            results.append(("raised", type(exc), str(exc), getattr(exc, "code", None), getattr(exc, "close_code", None)))
    return results, transport.sent, ws.client_state, ws.application_state


def normalise(value: Any) -> list[Any]:
    """A flat, comparable form of ``value``: NaN equals NaN, -0.0 is not 0.0, bool is not int.

    Iterative, so values nested thousands deep (which the codecs may return
    or refuse) never hit the recursion limit in the harness itself.
    """
    out: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            out.append(("float", repr(item)))
        elif isinstance(item, (list, tuple)):
            out.append((type(item).__name__, len(item)))
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            out.append(("dict", len(item)))
            for key, child in reversed(list(item.items())):
                stack.append(child)
                stack.append(key)
        elif isinstance(item, (bytearray, memoryview)):
            out.append((type(item).__name__, bytes(item)))
        elif isinstance(item, (str, bytes, int, type(None))):
            out.append((type(item).__name__, item))
        else:  # exception types, WebSocketState members
            out.append(item)
    return out


def differential(events: list[dict[str, Any]], steps: list[Operation], options: dict[str, Any]) -> Any:
    b = backends()
    compiled = outcome(b.compiled, events, steps, options)
    pure = outcome(b.pure, events, steps, options)
    if normalise(compiled) != normalise(pure):
        if KNOWN_DEPTH_BOUNDARY and (_too_deep(compiled) or _too_deep(pure)):
            return compiled  # the known nesting-limit boundary (see KNOWN_DEPTH_BOUNDARY)
        raise Mismatch(
            f"backends disagree\noptions={options!r}\nevents={_short(events)}\ncompiled={_short(compiled)}\npure    ={_short(pure)}"
        )
    return compiled


# Known issue (found by this harness, 2026-11): the nesting limit of the
# standard library's encoder / decoder (send_json with the json and orjson
# codecs, receive_json with json) is the interpreter's recursion limit minus
# the caller's stack depth, and the pure backend's calls are a few frames
# deeper, so near ~990 levels one backend succeeds where the other raises
# "Maximum nesting depth exceeded". FUZZ_ALLOW_DEPTH_BOUNDARY=1 tolerates that
# one disagreement, so a long run can look for others; fuzz/test_crashes.py
# keeps a deterministic test of it.
KNOWN_DEPTH_BOUNDARY = os.environ.get("FUZZ_ALLOW_DEPTH_BOUNDARY", "") not in ("", "0")


def _too_deep(result: Any) -> bool:
    return any(
        isinstance(step, tuple) and step[0] == "raised" and str(step[2]).startswith("Maximum nesting depth exceeded")
        for step in result[0]
    )


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return "<nested too deep to print>"
    return text if len(text) < 4000 else text[:4000] + "..."


def check_raised(result: Any, allowed: tuple[type[BaseException], ...], what: str) -> None:
    if result[0] == "raised":
        exc_type = result[1]
        if issubclass(exc_type, RecursionError) or not issubclass(exc_type, allowed):
            raise Mismatch(f"{what} raised {exc_type.__name__}: {result[2]!r} (allowed: {[t.__name__ for t in allowed]})")


# --------------------------------------------------------------------------- the operations

RECEIVE_STEPS: list[tuple[str, Operation]] = [
    ("receive_text", lambda ws: ws.receive_text()),
    ("receive_bytes", lambda ws: ws.receive_bytes()),
    ("receive_json", lambda ws: ws.receive_json()),
    ("receive_json(binary)", lambda ws: ws.receive_json(mode="binary")),
    ("receive", lambda ws: ws.receive()),
    ("receive_event", lambda ws: ws.receive_event()),
    ("__anext__", lambda ws: ws.__anext__()),
]


def op_receive(r: Reader, codec: str) -> None:
    name, step = RECEIVE_STEPS[r.pick(len(RECEIVE_STEPS))]
    options = {"json_codec": codec, "value_type": KINDS[r.pick(4)]}
    event = build_event(r)
    (result,), *_ = differential([event], [step], options)
    check_raised(result, backends().receive_errors, name)
    payload = event.get("text") if isinstance(event.get("text"), str) else event.get("bytes")
    if result[0] == "value" and name.startswith("receive_json") and type(payload) in (str, bytes):
        agrees_with_stdlib(payload, result[1], codec)


def op_sequence(r: Reader, codec: str) -> None:
    count = 2 + r.pick(3)
    steps = [RECEIVE_STEPS[r.pick(len(RECEIVE_STEPS))][1] for _ in range(count)]
    events = [build_event(r) for _ in range(count)]
    results, *_ = differential(events, steps, {"json_codec": codec, "value_type": KINDS[r.pick(4)]})
    for result in results:
        check_raised(result, backends().receive_errors, "a receive in a sequence")


def op_receive_json_payload(r: Reader, codec: str) -> None:
    """The whole rest of the input as a JSON document: the codecs' parsers get the most of it."""
    as_bytes = r.byte() % 2
    raw = r.rest()
    payload: str | bytes = raw if as_bytes else r.text(raw)
    key = "bytes" if as_bytes else "text"
    (result,), *_ = differential([{"type": "websocket.receive", key: payload}], [lambda ws: ws.receive_json()], {"json_codec": codec})
    check_raised(result, (backends().InvalidJSON,), "receive_json")
    if result[0] == "value":
        agrees_with_stdlib(payload, result[1], codec)


def agrees_with_stdlib(payload: str | bytes, value: Any, codec: str) -> None:
    """Where the standard library parses the payload, ujson and json give its value; orjson too when it parses."""
    try:
        text = payload if isinstance(payload, str) else payload.decode("utf-8")
        expected = json.loads(text)
    except (ValueError, RecursionError):
        return  # the stdlib refuses it: ujson's documented leniencies may still accept it
    if normalise(value) != normalise(expected):
        raise Mismatch(f"{codec} parsed {_short(payload)} as {_short(value)}, the standard library as {_short(expected)}")


def op_send(r: Reader, codec: str) -> None:
    which = r.pick(6)
    if which == 0:  # the payload as JSON when it is JSON
        raw = r.rest()
        try:
            value = json.loads(raw.decode("utf-8", "surrogatepass"))
        except (ValueError, RecursionError):
            value = r.text(raw)
    else:
        value = build_value(r)
    mode = ("text", "binary")[r.pick(2)]
    kind = KINDS[r.pick(3)]
    steps: list[Operation] = [lambda ws: ws.send_json(value, mode), lambda ws: ws.send(value)]
    (result, dispatched), sent, *_ = differential([], steps, {"json_codec": codec, "value_type": kind})
    check_raised(result, (TypeError, ValueError), f"send_json({mode})")
    check_raised(dispatched, (TypeError, ValueError), f"send() as {kind}")
    if result[0] == "value" and mode == "text" and json_native(value):
        frame = sent[1]  # [accept, the send_json frame, ...]
        try:
            starlette = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except ValueError:
            return  # e.g. an int past the 4300-digit limit: printable by contract, not by json.dumps
        if frame.get("text") != starlette:
            raise Mismatch(f"send_json({_short(value)}) with {codec} wrote {_short(frame)}, Starlette writes {_short(starlette)}")


def op_send_raw(r: Reader, codec: str) -> None:
    raw = r.sized()
    candidates: list[Any] = [raw, r.text(raw), bytearray(raw), memoryview(raw), len(raw), None]
    data = candidates[r.pick(len(candidates))]
    steps: list[Operation] = [lambda ws: ws.send_text(data), lambda ws: ws.send_bytes(data)]
    (text_result, bytes_result), *_ = differential([], steps, {"json_codec": codec})
    check_raised(text_result, (TypeError,), "send_text")
    check_raised(bytes_result, (TypeError,), "send_bytes")


def op_round_trip(r: Reader, codec: str) -> None:
    value = build_value(r)
    mode = ("text", "binary")[r.pick(2)]
    (result,), sent, *_ = differential([], [lambda ws: ws.send_json(value, mode)], {"json_codec": codec})
    if result[0] != "value":
        return
    frame = {**sent[-1], "type": "websocket.receive"}
    (back,), *_ = differential([frame], [lambda ws: ws.receive_json()], {"json_codec": codec})
    check_raised(back, (backends().InvalidJSON,), "receive_json of what send_json wrote")
    if json_native(value) and back[0] == "value" and normalise(back[1]) != normalise(value):
        raise Mismatch(f"round trip with {codec}: sent {_short(value)}, received {_short(back[1])}")


OPERATIONS = [op_receive, op_receive, op_sequence, op_receive_json_payload, op_receive_json_payload, op_send, op_send_raw, op_round_trip]


def check_one_input(data: bytes) -> None:
    """One fuzz input: raises ``Mismatch`` (or whatever escaped) when something is wrong."""
    r = Reader(data)
    operation = OPERATIONS[r.pick(len(OPERATIONS))]
    codec = CODECS[r.pick(len(CODECS))]
    operation(r, codec)


# --------------------------------------------------------------------------- entry points

test_one_input: Callable[[bytes], None] = check_one_input


def _libfuzzer_symbols_global() -> None:
    """Make the libFuzzer inside atheris export its coverage hooks to extensions loaded later.

    atheris's prebuilt wheel loads its libFuzzer core privately; re-opening
    the loaded library with RTLD_GLOBAL | RTLD_NOLOAD promotes its symbols
    (__sanitizer_cov_*), which an extension built with -fsanitize-coverage
    needs at import. A build without that instrumentation needs nothing.
    """
    import ctypes

    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "core_with_libfuzzer" in line}
    for path in paths:
        ctypes.CDLL(path, mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--replay":
        failures = 0
        for path in argv[2:]:
            try:
                check_one_input(Path(path).read_bytes())
            except Exception as exc:
                failures += 1
                print(f"{path}: {type(exc).__name__}: {exc}")
            else:
                print(f"{path}: ok")
        return 1 if failures else 0

    import atheris

    def first_input(data: bytes) -> None:
        # atheris loads its libFuzzer (with RTLD_GLOBAL) in Fuzz(), and an
        # extension built with -fsanitize-coverage needs its hooks when it is
        # imported: so import on the first input, instrumenting the Python side.
        global test_one_input
        _libfuzzer_symbols_global()
        with atheris.instrument_imports(include=["bocadillo_ws"]):
            b = backends()
        print(f"fuzzing the compiled backend {b.module_file} against the pure one", file=sys.stderr)
        test_one_input = check_one_input
        check_one_input(data)

    global test_one_input
    test_one_input = first_input
    atheris.Setup(argv, lambda data: test_one_input(data))
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
