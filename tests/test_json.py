"""docs/contract.md §5: the JSON codecs, on both backends."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bocadillo_ws
from asgi_helpers import binary, open_socket, text

NAMED = ["ujson", "json", "orjson"]


class JsonModuleCodec:
    """A user codec: compact stdlib json, returning str."""

    @staticmethod
    def dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @staticmethod
    def loads(payload: str | bytes) -> Any:
        return json.loads(payload)


class BytesCodec(JsonModuleCodec):
    """A user codec returning UTF-8 bytes, like orjson.dumps."""

    @staticmethod
    def dumps(obj: Any) -> bytes:  # type: ignore[override]
        return JsonModuleCodec.dumps(obj).encode("utf-8")


@pytest.fixture(params=[*NAMED, "custom-str", "custom-bytes"])
def codec(request: pytest.FixtureRequest, impl: Any) -> Any:
    spec = {"custom-str": JsonModuleCodec(), "custom-bytes": BytesCodec()}.get(request.param, request.param)
    return impl.module.make_json_codec(spec)


ORDINARY = [
    {"msg": "héllo / 👋 <b>&", "n": 1, "f": 2.5, "ok": True, "none": None, "list": [1, "2", [3]]},
    [1, -2, 3.25, 1e16, 0.1, -0.0, "\u2028", "\x00\x1f\x7f", 'a\\b"c'],
    "just a string",
    {"nested": {"deeper": [{"k": "v"}] * 3}},
    {},
    [],
    0,
    None,
]


@pytest.mark.parametrize("data", ORDINARY)
def test_wire_text_is_starlettes(codec: Any, data: Any) -> None:
    expected = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert codec.encode_text(data) == expected
    assert codec.encode_binary(data) == expected.encode("utf-8")
    assert type(codec.encode_binary(data)) is bytes


@pytest.mark.parametrize("data", ORDINARY)
def test_round_trip_text_and_binary(codec: Any, data: Any) -> None:
    assert codec.decode(codec.encode_text(data)) == data
    assert codec.decode(codec.encode_binary(data)) == data


def test_big_ints_are_exact_on_receive(codec: Any) -> None:
    # orjson alone reads these as floats; every codec must give the ints back.
    values = [2**64, -(2**63) - 1, -(2**70), 10**40, 12345678901234567890123]
    for document in (json.dumps(values), json.dumps({"id": values[0], "s": "x" * 50, "v": values})):
        decoded = codec.decode(document)
        assert decoded == json.loads(document)
        assert codec.decode(document.encode()) == decoded
        assert all(type(v) is int for v in (decoded if isinstance(decoded, list) else decoded["v"]))


@pytest.mark.parametrize("text", ["1234567890123456789", "[0.12345678901234567890123]", '"digits 12345678901234567890"'])
def test_long_digit_runs_parse_as_json_does(codec: Any, text: str) -> None:
    assert codec.decode(text) == json.loads(text)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("", False),
        ("1" * 18, False),
        ("1" * 19, True),
        ("x" * 40 + "1" * 19, True),
        ("1" * 19 + "x" * 40, True),
        ("12345678901234567.8", False),  # 17 + 1 digits: a dot breaks the run
        (("1" * 18 + " ") * 10, False),
        ("é" * 30 + "9" * 19 + "😀", True),
        ("٠١٢٣٤٥٦٧٨٩" * 3, False),  # only ASCII digits count
    ],
)
def test_long_digit_run_rule(impl: Any, payload: str, expected: bool) -> None:
    assert impl.module.has_long_digit_run(payload) is expected
    assert impl.module.has_long_digit_run(payload.encode()) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("[1e-5]", True),
        ("[0.00001]", True),
        ("[1e5,-1,0.000,0.0001,10000]", False),  # "0.000", and "0000" not after "0."
        ('"re-use"', True),  # a false alarm costs only a re-print
        ("e", False),
        ("-", False),
        (".0000", False),
        ("0.000", False),
        ("x0.0000", True),
        ("€ [2.5e-7]", True),  # two-byte kind
        ("😀 [0.00002] 😀", True),  # four-byte kind
        ("😀 [1.5, -2, 0.5] 😀", False),
    ],
)
def test_float_suspect_rule(impl: Any, text: str, expected: bool) -> None:
    assert impl.module.has_float_suspect(text) is expected
    assert impl.module.has_float_suspect(text.encode()) is expected


@pytest.mark.parametrize(
    "n",
    [2**63, 2**64, -(2**64) - 1, 10**100, 10**5000, -(10**6000)],
    ids=["2**63", "2**64", "-2**64-1", "10**100", "10**5000", "-10**6000"],
)
def test_any_int_serialises(codec: Any, n: int) -> None:
    import sys

    limit = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)
        expected = str(n)
    finally:
        sys.set_int_max_str_digits(limit)
    if codec.name == "custom" and abs(n) > 10**4000:
        # A user codec prints ints its own way: here json's digit limit shows through.
        with pytest.raises(ValueError, match="integer string conversion"):
            codec.encode_text([n])
        return
    assert codec.encode_text([n]) == f"[{expected}]"
    assert sys.get_int_max_str_digits() == limit  # the limit is restored


@pytest.mark.parametrize("bad", [{1, 2}, object(), b"bytes", complex(1, 2), {"k": {1}}])
def test_unserialisable_is_type_error(codec: Any, bad: Any) -> None:
    with pytest.raises(TypeError):
        codec.encode_text(bad)
    with pytest.raises(TypeError):
        codec.encode_binary(bad)


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), float("-inf"), [None, float("nan")], {"a": [1, {"b": float("inf")}]}]
)
def test_nan_and_infinity_are_value_errors(codec: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        codec.encode_text(bad)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        codec.encode_binary(bad)


def test_null_is_not_mistaken_for_nan(codec: Any) -> None:
    assert codec.encode_text([None, 1.5, {"x": None}]) == '[null,1.5,{"x":null}]'


@pytest.mark.parametrize("depth", [100_000])
def test_deep_nesting_is_value_error_on_send(codec: Any, depth: int) -> None:
    data: Any = []
    for _ in range(depth):
        data = [data]
    with pytest.raises(ValueError) as info:
        codec.encode_text(data)
    assert not isinstance(info.value, RecursionError)


def nested(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` lists."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def at_depth(frames: int, check: Callable[[], None]) -> None:
    """``check()``, called ``frames`` Python frames deeper than here."""
    if frames:
        return at_depth(frames - 1, check)
    return check()


@pytest.mark.parametrize("stack", [0, 300], ids=["shallow-caller", "caller-300-frames-deep"])
def test_json_codec_nesting_limit_is_fixed(impl: Any, stack: int) -> None:
    """json's own limit moves with the caller's stack; ours is MAX_DEPTH wherever json does the work."""
    codec = impl.module.make_json_codec("json")
    limit = 512

    def check() -> None:
        document = "[" * limit + "]" * limit
        assert codec.decode(document) == json.loads(document)
        assert codec.encode_text(nested(limit, 0)) == "[" * limit + "0" + "]" * limit
        with pytest.raises(bocadillo_ws.InvalidJSON, match="Maximum nesting depth exceeded"):
            codec.decode("[" * (limit + 1) + "]" * (limit + 1))
        with pytest.raises(ValueError, match="Maximum nesting depth exceeded while encoding JSON"):
            codec.encode_text(nested(limit + 1, 0))

    at_depth(stack, check)


@pytest.mark.parametrize("name", ["json", "ujson", "orjson"])
@pytest.mark.parametrize("stack", [0, 300], ids=["shallow-caller", "caller-300-frames-deep"])
def test_too_deep_wins_over_other_errors_at_any_stack_depth(impl: Any, name: str, stack: int) -> None:
    """Found by the fuzzer: deep data that is also bad must fail the same way whatever the caller's depth.

    json reaches an unserialisable object (or a syntax error) past MAX_DEPTH
    only when the caller's stack leaves it room; "too deep" is checked first.
    """
    codec = impl.module.make_json_codec(name)

    def check() -> None:
        for deep_and_bad in (nested(600, object()), [object(), nested(600, 0)], {"a": nested(513, {1, 2})}):
            with pytest.raises(ValueError, match=r"^Maximum nesting depth exceeded while encoding JSON$"):
                codec.encode_text(deep_and_bad)
        with pytest.raises(TypeError, match=r"^Object of type object is not JSON serializable$"):
            codec.encode_text(nested(400, object()))
        circular: list[Any] = []
        circular.append(circular)
        with pytest.raises(ValueError, match=r"^Circular reference detected$"):
            codec.encode_text(nested(10, circular))
        with pytest.raises(bocadillo_ws.InvalidJSON, match=r"^Maximum nesting depth exceeded") as deep:
            codec.decode("[" * 600 + "x")
        assert deep.value.close_code == 1007
        with pytest.raises(bocadillo_ws.InvalidJSON, match=r"^Expecting value") as shallow:
            codec.decode("[" * 400 + "x")
        assert shallow.value.pos == 400

    at_depth(stack, check)


def test_moderate_nesting_works(codec: Any) -> None:
    data: Any = "leaf"
    for _ in range(200):
        data = {"k": [data]}
    assert codec.decode(codec.encode_text(data)) == data


@pytest.mark.parametrize("document", ["[" * 100_000 + "]" * 100_000, "[" * 10_000_000, '{"a":' * 50_000])
def test_deep_nesting_is_invalid_json_on_receive(codec: Any, document: str) -> None:
    with pytest.raises(bocadillo_ws.InvalidJSON) as info:
        codec.decode(document)
    assert info.value.close_code == 1007


@pytest.mark.parametrize("document", ["", "{", "[1,]", "{'a': 1}", "nul", '{"a":1}x', "\ufeff[1]", "NaNx"])
def test_bad_json_is_invalid_json(codec: Any, document: str) -> None:
    for payload in (document, document.encode("utf-8")):
        with pytest.raises(bocadillo_ws.InvalidJSON) as info:
            codec.decode(payload)
        assert isinstance(info.value, json.JSONDecodeError)


@pytest.mark.parametrize("payload", [b"\xff", b'"\xc3"', b'"\xed\xa0\x80"', b"[1]\xff", b"\xc0\xaf"])
def test_bad_utf8_is_invalid_json(codec: Any, payload: bytes) -> None:
    with pytest.raises(bocadillo_ws.InvalidJSON):
        codec.decode(payload)


def test_int_beyond_the_digit_limit_is_invalid_json_on_receive(codec: Any) -> None:
    with pytest.raises(bocadillo_ws.InvalidJSON):
        codec.decode("1" * 5000)


# --------------------------------------------------------------------------- choosing a codec


@pytest.mark.parametrize("name", NAMED)
def test_named_codecs_are_shared_between_connections(impl: Any, name: str) -> None:
    assert impl.module.make_json_codec(name) is impl.module.make_json_codec(name)


@pytest.mark.parametrize("name", NAMED)
def test_named_codec_per_connection(WebSocket: type[Any], name: str) -> None:
    ws, _ = open_socket(WebSocket, json_codec=name)
    assert ws.json_codec == name


def test_custom_codec_per_connection(WebSocket: type[Any]) -> None:
    ws, _ = open_socket(WebSocket, json_codec=JsonModuleCodec())
    assert ws.json_codec == "custom"


@pytest.mark.anyio
@pytest.mark.parametrize("name", [*NAMED, "custom"])
async def test_codec_is_used_on_the_wire(WebSocket: type[Any], name: str) -> None:
    spec = JsonModuleCodec() if name == "custom" else name
    ws, transport = open_socket(WebSocket, text('{"a":"é"}'), binary(b"[1,2]"), value_type="json", json_codec=spec)
    await ws.accept()
    assert await ws.receive() == {"a": "é"}
    assert await ws.receive() == [1, 2]
    await ws.send({"b": "/"})
    await ws.send_json({"b": "/"}, mode="binary")
    assert transport.frames == [
        {"type": "websocket.send", "text": '{"b":"/"}'},
        {"type": "websocket.send", "bytes": b'{"b":"/"}'},
    ]


def test_unknown_codec_name(WebSocket: type[Any]) -> None:
    with pytest.raises(ValueError, match="Unknown json_codec 'simplejson': expected one of 'ujson', 'orjson', 'json'"):
        open_socket(WebSocket, json_codec="simplejson")


@pytest.mark.parametrize("bad", [42, None, object(), json.JSONEncoder()])
def test_codec_without_dumps_and_loads(WebSocket: type[Any], bad: object) -> None:
    with pytest.raises(TypeError, match="object with dumps\\(\\) and loads\\(\\)"):
        open_socket(WebSocket, json_codec=bad)


def test_orjson_missing_is_a_clear_error(WebSocket: type[Any], impl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(impl.module, "orjson", None)
    # As on a machine without orjson: no orjson codec made before either.
    monkeypatch.setattr("bocadillo_ws._json_fallback._shared", {})
    with pytest.raises(ImportError, match='pip install "bocadillo_ws\\[orjson\\]"'):
        open_socket(WebSocket, json_codec="orjson")


def test_stdlib_module_as_a_custom_codec(impl: Any) -> None:
    # json itself has dumps/loads; its output is sent as it writes it.
    codec = impl.module.make_json_codec(json)
    assert codec.encode_text({"a": 1}) == '{"a": 1}'
    assert codec.decode(b'{"a": 1}') == {"a": 1}


# --------------------------------------------------------------------------- user codec edge cases


class Broken:
    def __init__(self, out: Any = "", error: BaseException | None = None) -> None:
        self.out, self.error = out, error

    def dumps(self, obj: Any) -> Any:
        if self.error is not None:
            raise self.error
        return self.out

    def loads(self, payload: Any) -> Any:
        if self.error is not None:
            raise self.error
        return self.out


def test_custom_dumps_must_return_str_or_bytes(impl: Any) -> None:
    codec = impl.module.make_json_codec(Broken(out=42))
    with pytest.raises(TypeError, match=r"json_codec Broken\.dumps\(\) must return str or bytes, not int"):
        codec.encode_text({})
    with pytest.raises(TypeError, match="must return str or bytes, not int"):
        codec.encode_binary({})


def test_custom_dumps_bad_utf8_is_value_error(impl: Any) -> None:
    codec = impl.module.make_json_codec(Broken(out=b'"\xff"'))
    with pytest.raises(ValueError, match="not valid UTF-8"):
        codec.encode_text({})
    with pytest.raises(ValueError, match="not valid UTF-8"):
        codec.encode_binary({})


def test_custom_recursion_error_is_mapped(impl: Any) -> None:
    codec = impl.module.make_json_codec(Broken(error=RecursionError("deep")))
    with pytest.raises(ValueError, match="Maximum nesting depth exceeded"):
        codec.encode_text({})
    with pytest.raises(bocadillo_ws.InvalidJSON, match="Maximum nesting depth exceeded"):
        codec.decode("[]")


def test_custom_loads_value_error_is_invalid_json(impl: Any) -> None:
    codec = impl.module.make_json_codec(Broken(error=ValueError("nope")))
    with pytest.raises(bocadillo_ws.InvalidJSON, match="nope"):
        codec.decode("[]")


def test_custom_loads_other_errors_propagate(impl: Any) -> None:
    codec = impl.module.make_json_codec(Broken(error=KeyError("bug in the codec")))
    with pytest.raises(KeyError):
        codec.decode("[]")


# --------------------------------------------------------------------------- documented differences


@pytest.mark.parametrize("document", ["01", "1.", "[-]", '"a\nb"'])
def test_ujson_leniencies_are_as_documented(impl: Any, document: str) -> None:
    """docs/json-codecs.md: ujson accepts these; json and orjson refuse them."""
    assert impl.module.make_json_codec("ujson").decode(document) is not None
    for strict in ("json", "orjson"):
        with pytest.raises(bocadillo_ws.InvalidJSON):
            impl.module.make_json_codec(strict).decode(document)


@pytest.mark.parametrize("name", NAMED)
@pytest.mark.parametrize("document", ['{"a": 1,\n "b": }', "{bad json", "[1, 2", '"unterminated', "01"])
def test_invalid_json_has_json_s_message_and_position(impl: Any, name: str, document: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(document)
    if name == "ujson" and document == "01":
        assert impl.module.make_json_codec(name).decode(document) == 1  # a documented leniency
        return
    for payload in (document, document.encode()):
        with pytest.raises(bocadillo_ws.InvalidJSON) as info:
            impl.module.make_json_codec(name).decode(payload)
        assert (info.value.msg, info.value.pos, info.value.lineno, info.value.colno) == (
            expected.value.msg, expected.value.pos, expected.value.lineno, expected.value.colno
        )


def test_orjson_keeps_its_message_for_what_only_json_accepts(impl: Any) -> None:
    with pytest.raises(bocadillo_ws.InvalidJSON, match=r"^unexpected character"):
        impl.module.make_json_codec("orjson").decode("[NaN]")


# --------------------------------------------------------------------------- the wire text, for any ordinary data

# Text without lone surrogates: those cannot be UTF-8 encoded for a binary frame.
utf8_text = st.text(st.characters(blacklist_categories=("Cs",)))
ordinary_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | utf8_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(utf8_text, children, max_size=5),
    max_leaves=25,
)
# Floats scaled into the ranges where the codecs print exponents differently.
tricky_floats = st.lists(
    st.builds(lambda f, e: f * 10.0**e, st.floats(-10, 10), st.integers(-12, 20)).filter(math.isfinite),
    min_size=1,
    max_size=8,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=ordinary_json | tricky_floats)
def test_wire_text_is_starlettes_for_any_ordinary_data(codec: Any, data: Any) -> None:
    """Floats included: ujson and orjson print some exponents differently, and are corrected."""
    expected = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert codec.encode_text(data) == expected
    assert codec.encode_binary(data) == expected.encode("utf-8")
