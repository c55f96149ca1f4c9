"""Leak tests: every operation of a backend, many times over, and no memory kept.

Each test drives one family of operations (receive, send, the error paths,
whole connection lifecycles) in process, without an event loop: the
transport here never suspends, so a coroutine runs to completion with one
``coro.send(None)``. After a warm-up (free lists, caches and interned
strings settle), three things must hold over the measured run:

- ``tracemalloc``: the traced memory did not grow beyond a small constant
  (``TRACED_SLACK``), whatever the number of operations;
- RSS (``/proc/self/statm``) grew by at most ``RSS_SLACK`` (1 MiB), or,
  when it stepped up by more, by at most that over a second run of the same
  operations (a leak grows again, an allocator high-water step does not:
  seen on 3.12 with the 100 kB too-deep JSON case, before and after the
  3.12 message methods);
- reference counts: the objects every operation touches (the payloads fed
  in, the connection, the transport, the classes whose instances are made)
  are back to what they were. A missed ``Py_DECREF`` on an object that
  already exists (a payload returned as is, an exception class) leaks no
  memory at all; only its reference count shows it.

Every operation also checks what it got (the value received, the frame sent,
the exception's type and message), so no test can pass by doing nothing, and
each test checks how many operations of each kind it ran.

The number of operations is ``BOCADILLO_WS_LEAK_MESSAGES`` (default 200,000)
per backend, split between the four tests; the pure-Python leg runs a tenth
of it (it has no reference counting of its own to get wrong; the shared
Python modules are exercised by the compiled leg too). For the long run::

    BOCADILLO_WS_LEAK_MESSAGES=1000000 pytest tests/test_leaks.py
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tracemalloc
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.exceptions import WebSocketException
from starlette.websockets import WebSocket as StarletteWebSocket
from starlette.websockets import WebSocketDisconnect

from asgi_helpers import SCOPE, drive
from bocadillo_ws import InvalidJSON, UnexpectedMessageType
from bocadillo_ws._view import view_endpoint

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc (Linux)")

MESSAGES = int(os.environ.get("BOCADILLO_WS_LEAK_MESSAGES", "200000"))
PURE_SHARE = 10  # the [py] leg runs MESSAGES // PURE_SHARE
# How MESSAGES is split between the tests (lifecycles cost the most each).
WEIGHTS = {"receive": 35, "send": 30, "errors": 20, "lifecycle": 15}

TRACED_SLACK = 64 * 1024  # bytes: a constant, however many operations run
RSS_SLACK = 1 << 20  # 1 MiB
REFCOUNT_SLACK = 4  # per tracked object: a leak per operation would be thousands
PAGE = os.sysconf("SC_PAGE_SIZE")


def operations(impl: Any, test: str) -> int:
    count = MESSAGES * WEIGHTS[test] // sum(WEIGHTS.values())
    if impl.tag == "py":
        count //= PURE_SHARE
    return max(count, 1_000)


# --------------------------------------------------------------------------- driving


def fails(coroutine: Coroutine[Any, Any, Any], expected: type[BaseException]) -> BaseException:
    try:
        drive(coroutine)
    except expected as exc:
        return exc
    raise AssertionError(f"expected {expected.__name__}")


class Wire:
    """A transport that never suspends and keeps no history: the last frame only.

    The test puts the next event in ``inbound``; ``send`` counts and keeps
    the last message; ``fail`` makes sends raise a *fresh* ``OSError`` (a
    re-raised instance would grow its traceback on every raise).
    """

    __slots__ = ("fail", "inbound", "last", "sent")

    def __init__(self) -> None:
        self.inbound: Any = None
        self.sent = 0
        self.last: Any = None
        self.fail = False

    async def receive(self) -> Any:
        event, self.inbound = self.inbound, None
        if event is None:
            raise AssertionError("the test fed no event")
        return event

    async def send(self, message: Any) -> None:
        if self.fail:
            raise ConnectionResetError("peer gone")
        self.sent += 1
        self.last = message


def connected(WebSocket: type[Any], **options: Any) -> tuple[Any, Wire]:
    wire = Wire()
    ws = WebSocket(dict(SCOPE), wire.receive, wire.send, **options)
    wire.inbound = {"type": "websocket.connect"}
    drive(ws.accept())
    assert wire.last == {"type": "websocket.accept", "subprotocol": None, "headers": []}
    wire.last = None
    return ws, wire


def fresh(text: str) -> str:
    """A new, non-interned, non-immortal str equal to ``text`` (refcounts are tracked)."""
    return "".join([text[:1], text[1:]]) if len(text) > 1 else text + ""


class StdlibCodec:
    """A user codec (``json_codec=<object>``): the CustomJSONCodec path."""

    @staticmethod
    def dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @staticmethod
    def loads(text: str | bytes) -> Any:
        return json.loads(text)


CODECS: list[Any] = ["ujson", "orjson", "json", StdlibCodec()]


# --------------------------------------------------------------------------- measuring


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@dataclass
class Workload:
    """Cases run round robin; ``tracked`` objects must end with the refcounts they started with."""

    cases: list[Callable[[int], None]]
    tracked: list[Any]
    wires: list[Wire]
    names: list[str]

    def run(self, start: int, stop: int, tally: Counter[str]) -> None:
        cases = self.cases
        count = len(cases)
        for i in range(start, stop):
            cases[i % count](i)
        for k in range(count):  # how many times each case ran, without counting in the loop
            tally[self.names[k]] += len(range(start + ((k - start) % count), stop, count))

    def settle(self) -> None:
        for wire in self.wires:
            wire.last = None  # the last frame may hold a tracked payload


def check_no_leak(workload: Workload, n: int) -> Counter[str]:
    """Warm up, then run ``n`` operations and compare memory and refcounts."""
    count = len(workload.cases)
    n = max(count, n - n % count)  # whole rounds: every case runs as often
    warmup = max(20 * count, (n // 10) - (n // 10) % count)
    tally: Counter[str] = Counter()
    gc.collect()
    tracemalloc.start()
    try:
        workload.run(0, warmup, tally)
        workload.settle()
        gc.collect()
        traced_before = tracemalloc.get_traced_memory()[0]
        snapshot_before = tracemalloc.take_snapshot()
        rss_before = rss()
        refs_before = [sys.getrefcount(obj) for obj in workload.tracked]

        workload.run(warmup, warmup + n, tally)
        workload.settle()
        gc.collect()
        refs_after = [sys.getrefcount(obj) for obj in workload.tracked]
        rss_after = rss()
        traced_after = tracemalloc.get_traced_memory()[0]
        snapshot_after = tracemalloc.take_snapshot()
        rss_grown = rss_after - rss_before
        if rss_grown > RSS_SLACK:
            # RSS moves in steps that are not leaks (the allocator's high-water
            # mark, stack pages first touched): a leak grows again over a second
            # run of the same operations, a step does not. That run decides.
            workload.run(warmup + n, warmup + 2 * n, Counter())
            workload.settle()
            gc.collect()
            print(f"\nRSS grew {rss_grown:+d} B over the first run; running the operations again")
            rss_grown = rss() - rss_after
    finally:
        tracemalloc.stop()

    grown = traced_after - traced_before
    leaked = [
        (repr(obj)[:60], before, after)
        for obj, before, after in zip(workload.tracked, refs_before, refs_after)
        if after - before > REFCOUNT_SLACK
    ]
    # -s shows the figures of a passing run too.
    print(f"\n{n} operations after {warmup} warm-up: traced {grown:+d} B, RSS {rss_grown:+d} B, refcounts grown: {len(leaked)}")
    problems = []
    if grown > TRACED_SLACK:
        top = snapshot_after.compare_to(snapshot_before, "lineno")[:10]
        details = "\n".join(str(stat) for stat in top)
        problems.append(f"traced memory grew by {grown} bytes (slack {TRACED_SLACK}):\n{details}")
    if rss_grown > RSS_SLACK:
        problems.append(f"RSS grew by {rss_grown} bytes (slack {RSS_SLACK})")
    if leaked:
        problems.append(f"reference counts grew (object, before, after): {leaked}")
    assert not problems, f"over {n} operations:\n" + "\n".join(problems)
    assert sum(tally.values()) == warmup + n
    return tally


def tracked_refcounts_are_real(objects: list[Any]) -> None:
    # Immortal objects (3.12+) have a huge fixed refcount: tracking one proves nothing.
    assert all(sys.getrefcount(obj) < 1 << 28 for obj in objects)


# --------------------------------------------------------------------------- receive


def test_receive_operations_do_not_leak(impl: Any) -> None:
    WebSocket = impl.WebSocket
    cases: list[Callable[[int], None]] = []
    names: list[str] = []
    wires: list[Wire] = []
    text_payload = fresh("héllo/wörld 🎉 \"quoted\"")
    empty_text = fresh("")
    bytes_payload = bytes(bytearray(b"\x00\xff binary \x80"))
    json_text = fresh('{"room":"lobby/ü","list":[1,2.5,null,true],"nested":{"k":"✓"}}')
    json_value = json.loads(json_text)
    big_int_text = fresh("[123456789012345678901234567890,1e-05]")
    tracked: list[Any] = [text_payload, bytes_payload, json_text, big_int_text]

    def case(name: str, make: Callable[[Wire, Any], Callable[[int], None]], **options: Any) -> None:
        ws, wire = connected(WebSocket, **options)
        wires.append(wire)
        tracked.extend([ws, wire])
        cases.append(make(wire, ws))
        names.append(name)

    for shape in ("uvicorn", "hypercorn"):
        other = {"bytes": None} if shape == "hypercorn" else {}
        other_text = {"text": None} if shape == "hypercorn" else {}

        def receive_text_fixed(wire: Wire, ws: Any, other: dict[str, Any] = other) -> Callable[[int], None]:
            def run(i: int) -> None:
                wire.inbound = {"type": "websocket.receive", "text": text_payload, **other}
                assert drive(ws.receive_text()) is text_payload

            return run

        def receive_text_fresh(wire: Wire, ws: Any, other: dict[str, Any] = other) -> Callable[[int], None]:
            def run(i: int) -> None:
                wire.inbound = {"type": "websocket.receive", "text": f"message {i}", **other}
                assert drive(ws.receive_text()) == f"message {i}"

            return run

        def receive_bytes_fixed(wire: Wire, ws: Any, other: dict[str, Any] = other_text) -> Callable[[int], None]:
            def run(i: int) -> None:
                wire.inbound = {"type": "websocket.receive", "bytes": bytes_payload, **other}
                assert drive(ws.receive_bytes()) is bytes_payload

            return run

        def receive_bytes_fresh(wire: Wire, ws: Any, other: dict[str, Any] = other_text) -> Callable[[int], None]:
            def run(i: int) -> None:
                wire.inbound = {"type": "websocket.receive", "bytes": b"%d" % i, **other}
                assert drive(ws.receive_bytes()) == b"%d" % i

            return run

        case(f"receive_text/{shape}/fixed", receive_text_fixed)
        case(f"receive_text/{shape}/fresh", receive_text_fresh)
        case(f"receive_bytes/{shape}/fixed", receive_bytes_fixed)
        case(f"receive_bytes/{shape}/fresh", receive_bytes_fresh)

    def receive_empty(wire: Wire, ws: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            wire.inbound = {"type": "websocket.receive", "text": empty_text}
            assert drive(ws.receive_text()) == ""
            wire.inbound = {"type": "websocket.receive", "bytes": b""}
            assert drive(ws.receive_bytes()) == b""

        return run

    case("receive/empty", receive_empty)

    for codec in CODECS:
        label = codec if isinstance(codec, str) else "custom"

        def receive_json_text(wire: Wire, ws: Any) -> Callable[[int], None]:
            def run(i: int) -> None:
                wire.inbound = {"type": "websocket.receive", "text": json_text}
                assert drive(ws.receive_json()) == json_value
                wire.inbound = {"type": "websocket.receive", "text": '{"seq":%d,"s":"é/%d"}' % (i, i)}
                assert drive(ws.receive_json()) == {"seq": i, "s": f"é/{i}"}

            return run

        def receive_json_binary(wire: Wire, ws: Any) -> Callable[[int], None]:
            def run(i: int) -> None:
                wire.inbound = {"type": "websocket.receive", "bytes": b'[%d,"\xc3\xa9"]' % i, "text": None}
                assert drive(ws.receive_json(mode="binary")) == [i, "é"]

            return run

        def receive_json_big_int(wire: Wire, ws: Any) -> Callable[[int], None]:
            def run(i: int) -> None:  # orjson: the long-digit-run re-parse; ujson: its fallback
                wire.inbound = {"type": "websocket.receive", "text": big_int_text}
                assert drive(ws.receive_json()) == [123456789012345678901234567890, 1e-05]

            return run

        case(f"receive_json/{label}/text", receive_json_text, json_codec=codec)
        case(f"receive_json/{label}/binary", receive_json_binary, json_codec=codec)
        case(f"receive_json/{label}/big-int", receive_json_big_int, json_codec=codec)

    # receive() and async for dispatch on receive_type
    def dispatch(kind: str, event: dict[str, Any], expected: Any) -> Callable[[Wire, Any], Callable[[int], None]]:
        def make(wire: Wire, ws: Any) -> Callable[[int], None]:
            def run(i: int) -> None:
                wire.inbound = dict(event)
                assert drive(ws.receive()) == expected
                wire.inbound = dict(event)
                assert drive(ws.__anext__()) == expected

            return run

        return make

    case("receive()/text", dispatch("text", {"type": "websocket.receive", "text": text_payload}, text_payload), value_type="text")
    case("receive()/bytes", dispatch("bytes", {"type": "websocket.receive", "bytes": bytes_payload}, bytes_payload), value_type="bytes")
    case("receive()/json", dispatch("json", {"type": "websocket.receive", "text": json_text}, json_value), value_type="json")
    event = {"type": "websocket.receive", "text": text_payload}
    case("receive()/event", dispatch("event", event, event), value_type="event")

    def receive_event(wire: Wire, ws: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            wire.inbound = {"type": "websocket.receive", "bytes": bytes_payload}
            assert drive(ws.receive_event()) == {"type": "websocket.receive", "bytes": bytes_payload}

        return run

    case("receive_event", receive_event)

    def iter_text(wire: Wire, ws: Any) -> Callable[[int], None]:
        iterator = ws.iter_text()

        def run(i: int) -> None:
            wire.inbound = {"type": "websocket.receive", "text": text_payload}
            assert drive(iterator.__anext__()) is text_payload

        return run

    case("iter_text", iter_text)

    tracked_refcounts_are_real(tracked)
    workload = Workload(cases, tracked, wires, names)
    tally = check_no_leak(workload, operations(impl, "receive"))
    assert set(tally) == set(names)
    assert len(set(tally.values())) == 1  # every case ran as often


# --------------------------------------------------------------------------- send


def test_send_operations_do_not_leak(impl: Any) -> None:
    WebSocket = impl.WebSocket
    cases: list[Callable[[int], None]] = []
    names: list[str] = []
    wires: list[Wire] = []
    text_payload = fresh("héllo/wörld 🎉")
    bytes_payload = bytes(bytearray(b"\x00\xff bytes"))
    array_payload = bytearray(b"array")
    view_payload = memoryview(b"view")
    value = {"room": fresh("lobby/ü"), "list": [1, 2.5, None, True], "nested": {"k": "✓"}}
    value_text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    floats = [1e-05, 1.5e-07, 0.0001, 2**70]  # the float re-print and big-int paths
    floats_text = json.dumps(floats, separators=(",", ":"))
    tracked: list[Any] = [text_payload, bytes_payload, array_payload, view_payload, value, floats]

    def case(name: str, make: Callable[[Wire, Any], Callable[[int], None]], **options: Any) -> None:
        ws, wire = connected(WebSocket, **options)
        wires.append(wire)
        tracked.extend([ws, wire])
        cases.append(make(wire, ws))
        names.append(name)

    def send_text(wire: Wire, ws: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            before = wire.sent
            drive(ws.send_text(text_payload))
            assert wire.last == {"type": "websocket.send", "text": text_payload}
            drive(ws.send_text(f"message {i}"))
            assert wire.last["text"] == f"message {i}"
            assert wire.sent == before + 2

        return run

    def send_bytes(wire: Wire, ws: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            drive(ws.send_bytes(bytes_payload))
            assert wire.last == {"type": "websocket.send", "bytes": bytes_payload}
            drive(ws.send_bytes(array_payload))
            assert type(wire.last["bytes"]) is bytes and wire.last["bytes"] == b"array"
            drive(ws.send_bytes(view_payload))
            assert type(wire.last["bytes"]) is bytes and wire.last["bytes"] == b"view"
            drive(ws.send_bytes(b"%d" % i))
            assert wire.last["bytes"] == b"%d" % i

        return run

    case("send_text", send_text)
    case("send_bytes", send_bytes)

    for codec in CODECS:
        label = codec if isinstance(codec, str) else "custom"

        def send_json(wire: Wire, ws: Any) -> Callable[[int], None]:
            def run(i: int) -> None:
                drive(ws.send_json(value))
                assert wire.last == {"type": "websocket.send", "text": value_text}
                drive(ws.send_json(value, mode="binary"))
                assert wire.last == {"type": "websocket.send", "bytes": value_text.encode()}
                drive(ws.send_json({"seq": i}))
                assert wire.last["text"] == '{"seq":%d}' % i
                drive(ws.send_json(floats))
                assert wire.last["text"] == floats_text

            return run

        case(f"send_json/{label}", send_json, json_codec=codec)

    def dispatch(payload: Any, frame: dict[str, Any]) -> Callable[[Wire, Any], Callable[[int], None]]:
        def make(wire: Wire, ws: Any) -> Callable[[int], None]:
            def run(i: int) -> None:
                drive(ws.send(payload))
                assert wire.last == frame

            return run

        return make

    case("send()/text", dispatch(text_payload, {"type": "websocket.send", "text": text_payload}), value_type="text")
    case("send()/bytes", dispatch(bytes_payload, {"type": "websocket.send", "bytes": bytes_payload}), value_type="bytes")
    case("send()/json", dispatch(value, {"type": "websocket.send", "text": value_text}), value_type="json")
    event = {"type": "websocket.send", "text": text_payload}
    case("send()/event", dispatch(event, event), value_type="event")

    def send_event(wire: Wire, ws: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            drive(ws.send_event({"type": "websocket.send", "bytes": bytes_payload}))
            assert wire.last == {"type": "websocket.send", "bytes": bytes_payload}

        return run

    case("send_event", send_event)

    tracked_refcounts_are_real(tracked)
    workload = Workload(cases, tracked, wires, names)
    tally = check_no_leak(workload, operations(impl, "send"))
    assert set(tally) == set(names)


# --------------------------------------------------------------------------- error paths


def test_error_paths_do_not_leak(impl: Any) -> None:
    """Every error raised on a live connection; the connection stays usable after each."""
    WebSocket = impl.WebSocket
    cases: list[Callable[[int], None]] = []
    names: list[str] = []
    wires: list[Wire] = []
    text_payload = fresh("not binary")
    bytes_payload = bytes(bytearray(b"not text"))
    bad_json = fresh('{"a": 1,, }')
    bad_utf8 = bytes(bytearray(b'{"a": "\xff\xfe"}'))
    too_deep = fresh("[" * 50_000 + "]" * 50_000)  # deeper than any codec on any Python (3.12+ allow ~8000)
    unserialisable = {1, 2}
    nan = [float("nan")]
    tracked: list[Any] = [text_payload, bytes_payload, bad_json, bad_utf8, unserialisable, nan]
    tracked += [UnexpectedMessageType, InvalidJSON, TypeError, ValueError, RuntimeError]
    first: dict[str, tuple[type[BaseException], str]] = {}

    def same_error(name: str, exc: BaseException) -> None:
        # Each time, the same exception type and message as the first time.
        seen = (type(exc), str(exc))
        assert first.setdefault(name, seen) == seen, (name, seen, first[name])

    def case(name: str, make: Callable[[Wire, Any], Callable[[int], None]], **options: Any) -> None:
        ws, wire = connected(WebSocket, **options)
        wires.append(wire)
        tracked.extend([ws, wire])
        cases.append(make(wire, ws))
        names.append(name)

    def wrong_kind(wire: Wire, ws: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            wire.inbound = {"type": "websocket.receive", "bytes": bytes_payload}
            exc = fails(ws.receive_text(), UnexpectedMessageType)
            assert (exc.expected, exc.received, exc.close_code) == ("text", "binary", 1003)
            wire.inbound = {"type": "websocket.receive", "text": text_payload, "bytes": None}
            exc = fails(ws.receive_bytes(), UnexpectedMessageType)
            assert (exc.expected, exc.received) == ("binary", "text")
            same_error("wrong-kind", exc)
            wire.inbound = {"type": "websocket.receive", "bytes": bytes_payload, "text": None}
            fails(ws.receive(), UnexpectedMessageType)  # receive() -> receive_text()
            wire.inbound = {"type": "websocket.receive", "text": text_payload}
            assert drive(ws.receive_text()) is text_payload  # still usable

        return run

    case("UnexpectedMessageType", wrong_kind)

    for codec in CODECS:
        label = codec if isinstance(codec, str) else "custom"

        def invalid_json(wire: Wire, ws: Any, label: str = label) -> Callable[[int], None]:
            def run(i: int) -> None:
                wire.inbound = {"type": "websocket.receive", "text": bad_json}
                exc = fails(ws.receive_json(), InvalidJSON)
                assert exc.close_code == 1007 and exc.doc == bad_json and isinstance(exc.pos, int)
                same_error(f"invalid/{label}", exc)
                wire.inbound = {"type": "websocket.receive", "bytes": bad_utf8}
                exc = fails(ws.receive_json(), InvalidJSON)
                same_error(f"utf8/{label}", exc)
                wire.inbound = {"type": "websocket.receive", "text": "[%d" % i}
                fails(ws.receive_json(), InvalidJSON)
                if i % 50 == 0:  # nesting deeper than any codec allows: slower, so rarer
                    wire.inbound = {"type": "websocket.receive", "text": too_deep}
                    exc = fails(ws.receive_json(), InvalidJSON)
                    same_error(f"deep/{label}", exc)
                wire.inbound = {"type": "websocket.receive", "text": "[%d]" % i}
                assert drive(ws.receive_json()) == [i]  # still usable

            return run

        def send_json_errors(wire: Wire, ws: Any, label: str = label) -> Callable[[int], None]:
            def run(i: int) -> None:
                exc = fails(ws.send_json(unserialisable), TypeError)
                same_error(f"set/{label}", exc)
                exc = fails(ws.send_json(nan), ValueError)
                same_error(f"nan/{label}", exc)
                exc = fails(ws.send_json({"x": object()}, mode="binary"), TypeError)
                assert wire.sent == 1 and wire.last is None  # only the accept, ever

            return run

        case(f"InvalidJSON/{label}", invalid_json, json_codec=codec)
        case(f"send_json-errors/{label}", send_json_errors, json_codec=codec)

    def send_type_errors(wire: Wire, ws: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            exc = fails(ws.send_text(bytes_payload), TypeError)
            assert str(exc) == "send_text() expects str, got bytes"
            exc = fails(ws.send_bytes(text_payload), TypeError)
            assert str(exc) == "send_bytes() expects bytes, bytearray or memoryview, got str"
            fails(ws.send_json(i, mode="neither"), RuntimeError)
            fails(ws.receive_json(mode="neither"), RuntimeError)
            drive(ws.send_text(text_payload))
            assert wire.last["text"] is text_payload  # still usable

        return run

    case("TypeError/send", send_type_errors)

    def malformed_events(wire: Wire, ws: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            wire.inbound = {"type": "websocket.receive"}
            exc = fails(ws.receive_text(), RuntimeError)
            same_error("no-payload", exc)
            wire.inbound = {"type": "websocket.receive", "text": bytes_payload}
            exc = fails(ws.receive_json(), RuntimeError)
            same_error("wrong-payload-type", exc)
            wire.inbound = {"type": "websocket.receive", "bytes": i}
            fails(ws.receive_bytes(), RuntimeError)

        return run

    case("RuntimeError/malformed", malformed_events)

    tracked_refcounts_are_real(tracked[:6])
    workload = Workload(cases, tracked, wires, names)
    tally = check_no_leak(workload, operations(impl, "errors"))
    assert set(tally) == set(names)


# --------------------------------------------------------------------------- lifecycles


def test_connection_lifecycles_do_not_leak(impl: Any) -> None:
    """A new connection each time: construct, accept, talk, end every documented way.

    Covers the disconnect path (``WebSocketDisconnect``), ``async with`` exits
    (1000, 1003, 1007, 1011, a ``WebSocketException``, a silenced
    disconnect), the transport failing on send (1006), state violations,
    ``from_starlette`` and ``websocket_view``'s endpoint.
    """
    WebSocket = impl.WebSocket
    payload = fresh("hello")
    reason = fresh("bye now")
    tracked: list[Any] = [WebSocket, WebSocketDisconnect, payload, reason, StarletteWebSocket]

    def start(**options: Any) -> tuple[Any, Wire]:
        return connected(WebSocket, **options)

    def talk_then_disconnect(i: int) -> None:
        codec = CODECS[i % len(CODECS)]
        ws, wire = start(value_type="json", json_codec=codec)
        wire.inbound = {"type": "websocket.receive", "text": '{"seq":%d}' % i}
        message = drive(ws.receive())
        drive(ws.send({"echo": message}))
        assert wire.last == {"type": "websocket.send", "text": '{"echo":{"seq":%d}}' % i}
        wire.inbound = {"type": "websocket.disconnect", "code": 1001, "reason": reason}
        exc = fails(ws.receive(), WebSocketDisconnect)
        assert (exc.code, exc.reason) == (1001, reason)
        # A receive after the disconnect is Starlette's state violation.
        fails(ws.receive_text(), RuntimeError)

    def disconnect_without_code(i: int) -> None:
        ws, wire = start(value_type="bytes")
        wire.inbound = {"type": "websocket.disconnect"}
        exc = fails(ws.receive_bytes(), WebSocketDisconnect)
        assert exc.code == 1005

    def async_with(body_error: Callable[[], BaseException] | None, code: int | None) -> Callable[[int], None]:
        def run(i: int) -> None:
            wire = Wire()
            ws = WebSocket(dict(SCOPE), wire.receive, wire.send, value_type="json")
            wire.inbound = {"type": "websocket.connect"}
            entered = drive(ws.__aenter__())
            assert entered is ws
            wire.inbound = {"type": "websocket.receive", "text": "[%d]" % i}
            assert drive(ws.receive()) == [i]
            error = body_error() if body_error is not None else None
            if isinstance(error, WebSocketDisconnect):
                wire.inbound = {"type": "websocket.disconnect", "code": 1000}
                try:
                    drive(ws.receive())
                except WebSocketDisconnect as exc:
                    error = exc
            silenced = drive(ws.__aexit__(type(error) if error else None, error, None))
            if error is None:
                assert silenced is False
            elif isinstance(error, (WebSocketDisconnect, WebSocketException)):
                assert silenced is True
            else:
                assert silenced is False
            if code is None:
                assert wire.last is None or wire.last["type"] != "websocket.close"
            else:
                assert wire.last["type"] == "websocket.close" and wire.last["code"] == code, wire.last

        return run

    def transport_failure(i: int) -> None:
        ws, wire = start()
        wire.fail = True
        exc = fails(ws.send_text(payload), WebSocketDisconnect)
        assert exc.code == 1006

    def from_starlette(i: int) -> None:
        wire = Wire()
        origin = StarletteWebSocket(dict(SCOPE), wire.receive, wire.send)
        ws = WebSocket.from_starlette(origin, value_type="text")
        wire.inbound = {"type": "websocket.connect"}
        drive(ws.accept())
        wire.inbound = {"type": "websocket.receive", "text": payload}
        assert drive(ws.receive()) is payload
        drive(ws.close(1000))
        assert origin.application_state.name == "DISCONNECTED"

    async def view(ws: Any) -> None:
        async with ws:
            message = await ws.receive()
            await ws.send(message)
            await ws.receive()  # a bad frame: UnexpectedMessageType, close 1003

    endpoint = view_endpoint(view, WebSocket, {"value_type": "text"})

    def view_case(i: int) -> None:
        wire = Wire()
        origin = StarletteWebSocket(dict(SCOPE), wire.receive, wire.send)
        feed = iter(
            [
                {"type": "websocket.connect"},
                {"type": "websocket.receive", "text": payload},
                {"type": "websocket.receive", "bytes": b"%d" % i},
            ]
        )

        async def receive() -> Any:
            return next(feed)

        origin._receive = receive
        exc = fails(endpoint(origin), UnexpectedMessageType)
        assert exc.close_code == 1003
        assert wire.last == {"type": "websocket.close", "code": 1003, "reason": ""}

    cases: list[Callable[[int], None]] = [
        talk_then_disconnect,
        disconnect_without_code,
        async_with(None, 1000),
        async_with(lambda: UnexpectedMessageType("text", "binary"), 1003),
        async_with(lambda: InvalidJSON("Expecting value", "x", 0), 1007),
        async_with(lambda: RuntimeError("boom"), 1011),
        async_with(lambda: WebSocketException(4000, "custom"), 4000),
        async_with(lambda: WebSocketDisconnect(1000), None),
        transport_failure,
        from_starlette,
        view_case,
    ]
    names = [getattr(c, "__name__", "case") + f"#{k}" for k, c in enumerate(cases)]
    tracked_refcounts_are_real([payload, reason])
    workload = Workload(cases, tracked, [], names)
    tally = check_no_leak(workload, operations(impl, "lifecycle"))
    assert set(tally) == set(names)


# --------------------------------------------------------------------------- Hub


class HeldWire(Wire):
    """A Wire whose frames wait while ``gate`` is set (a paused transport)."""

    __slots__ = ("gate",)

    def __init__(self) -> None:
        super().__init__()
        self.gate: Any = None

    async def send(self, message: Any) -> None:
        if self.gate is not None and message["type"] == "websocket.send":
            await self.gate.wait()
        await super().send(message)


def test_hub_does_not_leak(impl: Any) -> None:
    """Join, publish, leave: the fast path, a failed member, a slow member with each overflow policy.

    Nothing may stay behind: members, mailboxes, writer tasks, the events.
    """
    import asyncio

    from bocadillo_ws import Hub

    WebSocket = impl.WebSocket
    hub_class = type("BackendHub", (Hub,), {"_fan_out": staticmethod(impl.module.fan_out)})
    payload = fresh("room payload")
    room = fresh("room-1")
    tracked: list[Any] = [WebSocket, payload, room, hub_class]
    hubs = {policy: hub_class(max_queue=2, on_overflow=policy) for policy in ("close", "drop_oldest", "drop_newest")}
    loop = asyncio.new_event_loop()

    def join(hub: Hub, ws: Any) -> Any:
        membership = hub.join(room, ws)
        drive(membership.__aenter__())
        return membership

    def fast_path(i: int) -> None:
        hub = hubs["close"]
        sockets = [connected(WebSocket) for _ in range(3)]
        memberships = [join(hub, ws) for ws, _ in sockets]
        assert drive(hub.publish_text(room, payload)) == 3
        assert drive(hub.publish(room, {"i": i})) == 3
        for (_, wire), membership in zip(sockets, memberships):
            assert wire.sent == 3 and wire.last["text"]  # accept + 2 == '{"i":%d}' % i
            drive(membership.__aexit__(None, None, None))
        assert hub.rooms() == []

    def failed_member(i: int) -> None:
        hub = hubs["close"]
        (good, good_wire), (bad, bad_wire) = connected(WebSocket), connected(WebSocket)
        memberships = [join(hub, good), join(hub, bad)]
        bad_wire.fail = True
        assert drive(hub.publish_text(room, payload)) == 1
        assert hub.members(room) == [good] and bad.application_state.name == "DISCONNECTED"
        assert good_wire.last == {"type": "websocket.send", "text": payload}
        for membership in memberships:
            drive(membership.__aexit__(None, None, None))

    def slow_member(policy: str) -> Callable[[int], None]:
        async def run(i: int) -> None:
            hub = hubs[policy]
            wire = HeldWire()
            ws = WebSocket(dict(SCOPE), wire.receive, wire.send)
            wire.inbound = {"type": "websocket.connect"}
            await ws.accept()
            async with hub.join(room, ws):
                wire.gate = asyncio.Event()
                for _ in range(4):  # one in flight, two queued, one over the limit
                    await hub.publish_text(room, payload)
                gate, wire.gate = wire.gate, None
                gate.set()
                for _ in range(10):  # the writer drains, or the overflow close is sent
                    await asyncio.sleep(0)
                # accept + frames: close gets the 1013 close; the drops get 1 in flight + 2 queued.
                expected = {"close": 2, "drop_oldest": 4, "drop_newest": 4}[policy]
                assert wire.sent == expected, (policy, wire.sent)
            assert not hub._busy and not hub._tasks and hub.rooms() == []

        def case(i: int) -> None:
            loop.run_until_complete(run(i))

        case.__name__ = f"slow_{policy}"
        return case

    cases: list[Callable[[int], None]] = [fast_path, failed_member, *(slow_member(p) for p in hubs)]
    names = [getattr(c, "__name__", "case") for c in cases]
    tracked_refcounts_are_real([payload, room])
    try:
        workload = Workload(cases, tracked, [], names)
        tally = check_no_leak(workload, operations(impl, "lifecycle") // 4)
    finally:
        loop.close()
    assert set(tally) == set(names)
    stats = hubs["close"].stats()
    assert stats.closed_for_overflow == tally["slow_close"] and stats.lost == tally["failed_member"]
    assert (stats.members, stats.writers, stats.queued) == (0, 0, 0)
