"""Differential tests: the compiled and the pure-Python twins agree on random input.

Each example runs the same operation on a fresh socket of each backend and
compares what came out: the value returned, or the exception's type and
message, plus every ASGI event sent. The in-memory transport never suspends,
so a coroutine is driven to completion with one ``send(None)``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_helpers import SCOPE, Transport, connect, drive

# Compares against the compiled twin; slow: at the CI depth in py313-cython-slow,
# deep in differential-py311, not on every Python.
pytestmark = [pytest.mark.c_extension, pytest.mark.slow]


def outcome(WebSocket: type[Any], events: list[Any], operation: str, *args: Any, **options: Any) -> Any:
    transport = Transport(connect(), *events)
    ws = WebSocket(dict(SCOPE), transport.receive, transport.send, **options)
    drive(ws.accept())
    try:
        result: Any = ("value", drive(getattr(ws, operation)(*args)))
    except Exception as exc:
        result = ("raised", type(exc), str(exc), getattr(exc, "code", None))
    return result, transport.sent, ws.client_state, ws.application_state


def same_outcome(both: list[Any], events: list[Any], operation: str, *args: Any, **options: Any) -> Any:
    compiled, pure = (outcome(impl.WebSocket, events, operation, *args, **options) for impl in both)
    assert _normalise(compiled) == _normalise(pure)
    return pure


def _normalise(value: Any) -> Any:
    # NaN != NaN: compare floats by representation so equal outcomes compare equal.
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, (list, tuple)):
        return type(value)(_normalise(v) for v in value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)

payload_values = st.none() | st.text() | st.binary() | st.integers() | st.booleans() | st.just(bytearray(b"x"))

receive_events = st.one_of(
    # well-formed frames in every server's shape
    st.builds(lambda t: {"type": "websocket.receive", "text": t}, st.text()),
    st.builds(lambda t: {"type": "websocket.receive", "text": t, "bytes": None}, st.text()),
    st.builds(lambda b: {"type": "websocket.receive", "bytes": b}, st.binary()),
    st.builds(lambda b: {"type": "websocket.receive", "bytes": b, "text": None}, st.binary()),
    # JSON payloads, valid and not, as text and as bytes
    st.builds(lambda v: {"type": "websocket.receive", "text": json.dumps(v)}, json_values),
    st.builds(lambda v: {"type": "websocket.receive", "bytes": json.dumps(v).encode()}, json_values),
    # malformed: any keys, any values, unknown types, disconnects
    st.fixed_dictionaries(
        {"type": st.sampled_from(["websocket.receive", "websocket.disconnect", "websocket.connect", "http.request"])},
        optional={
            "text": payload_values,
            "bytes": payload_values,
            "code": st.integers(1000, 4999),
            "reason": st.text(max_size=10),
        },
    ),
)

send_data = st.one_of(
    json_values,
    st.binary(),
    st.just(bytearray(b"ab")),
    st.just(memoryview(b"ab")),
    st.sets(st.integers(), max_size=3),
    st.just(object),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**5000),
)

SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


# --------------------------------------------------------------------------- receive side


@SETTINGS
@given(event=receive_events, method=st.sampled_from(["receive_text", "receive_bytes", "receive_json", "receive_event"]))
def test_twins_agree_on_receive(both_impls: list[Any], event: dict[str, Any], method: str) -> None:
    same_outcome(both_impls, [event], method)


@SETTINGS
@given(
    event=receive_events,
    kind=st.sampled_from(["text", "bytes", "json", "event"]),
    codec=st.sampled_from(["ujson", "json", "orjson"]),
)
def test_twins_agree_on_typed_receive(both_impls: list[Any], event: dict[str, Any], kind: str, codec: str) -> None:
    same_outcome(both_impls, [event], "receive", value_type=kind, json_codec=codec)


@SETTINGS
@given(document=st.text() | st.binary(), codec=st.sampled_from(["ujson", "json", "orjson"]))
def test_twins_agree_on_arbitrary_json_payloads(both_impls: list[Any], document: str | bytes, codec: str) -> None:
    key = "text" if isinstance(document, str) else "bytes"
    same_outcome(both_impls, [{"type": "websocket.receive", key: document}], "receive_json", json_codec=codec)


@SETTINGS
@given(value=json_values, codec=st.sampled_from(["ujson", "json", "orjson"]))
def test_twins_agree_on_json_round_trips(both_impls: list[Any], value: Any, codec: str) -> None:
    # What one backend sends, the other receives identically.
    (sent_result, sent, *_) = same_outcome(both_impls, [], "send_json", value, json_codec=codec)
    if sent_result[0] == "value":
        frame = {**sent[-1], "type": "websocket.receive"}
        same_outcome(both_impls, [frame], "receive_json", json_codec=codec)


# --------------------------------------------------------------------------- send side


# Mostly the right type for the method, sometimes anything at all.
SEND_DATA = {
    "text": st.text() | st.text() | send_data,
    "bytes": st.binary() | st.binary() | send_data,
    "json": json_values | json_values | send_data,
}


@SETTINGS
@given(
    draw=st.data(),
    kind=st.sampled_from(["text", "bytes", "json"]),
    mode=st.sampled_from(["text", "binary"]),
    codec=st.sampled_from(["ujson", "json", "orjson"]),
)
def test_twins_agree_on_send(both_impls: list[Any], draw: st.DataObject, kind: str, mode: str, codec: str) -> None:
    data = draw.draw(SEND_DATA[kind], label="data")
    if kind == "json":
        same_outcome(both_impls, [], "send_json", data, mode, json_codec=codec)
    else:
        same_outcome(both_impls, [], f"send_{kind}", data)
    same_outcome(both_impls, [], "send", data, value_type=kind, json_codec=codec)


@SETTINGS
@given(event=st.dictionaries(st.sampled_from(["type", "text", "bytes", "code"]), payload_values | st.text()))
def test_twins_agree_on_raw_send_events(both_impls: list[Any], event: dict[str, Any]) -> None:
    same_outcome(both_impls, [], "send_event", event)


# --------------------------------------------------------------------------- codec helpers

digit_heavy = st.text(alphabet=st.sampled_from("0123456789 ,.-e\"é€😀"), max_size=120)


@SETTINGS
@given(payload=digit_heavy | digit_heavy.map(str.encode) | st.text() | st.binary())
def test_twins_agree_on_long_digit_runs(both_impls: list[Any], payload: str | bytes) -> None:
    # The compiled twin skips ahead in C; the pure one uses a regex.
    compiled, pure = (impl.module.has_long_digit_run(payload) for impl in both_impls)
    assert compiled == pure


float_heavy = st.text(alphabet=st.sampled_from("0.-e1 x€😀"), max_size=60)


@SETTINGS
@given(text=float_heavy | float_heavy.map(str.encode) | st.text() | st.binary())
def test_twins_agree_on_float_suspects(both_impls: list[Any], text: str | bytes) -> None:
    compiled, pure = (impl.module.has_float_suspect(text) for impl in both_impls)
    assert compiled == pure
