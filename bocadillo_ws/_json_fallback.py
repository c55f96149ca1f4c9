"""The exact, slow side of every JSON codec, shared by both backends.

The fast codecs (ujson, orjson) disagree with the standard library on errors
and on a few inputs. When one of them fails, the backends call these
functions, which give the standard library's result or exception, mapped to
the contract: ``InvalidJSON`` on receive, ``TypeError``/``ValueError`` on send,
never a ``RecursionError``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from ._errors import InvalidJSON

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_decode = json.JSONDecoder().decode

TOO_DEEP = "Maximum nesting depth exceeded"

# Where the standard library does the work, nesting deeper than this is "too
# deep". json's own limit is the interpreter's recursion limit minus the
# caller's stack depth: it would depend on how deep the application (and each
# backend) calls from. A fixed limit, well inside it, makes the outcome the
# same for both backends and every caller. (ujson and orjson have fixed
# limits of their own: 1024 and 255.)
MAX_DEPTH = 512
_BRACKET_OR_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def too_deep(text: str) -> bool:
    """Whether JSON ``text`` (or the valid prefix of one) nests deeper than ``MAX_DEPTH``."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the common case: two C scans
        return False
    depth = 0
    for token in _BRACKET_OR_STRING.findall(text):
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in "]}":
            depth -= 1
    return False


def dumps(data: Any) -> str:
    """Compact JSON text, as Starlette writes it, but never NaN or Infinity."""
    try:
        text = _encode(data)
    except RecursionError:
        text = None
    except (TypeError, ValueError) as exc:
        # Checked first: whether json got this far before failing depends on
        # the caller's stack depth (see MAX_DEPTH), so "too deep" must win.
        if nests_too_deep(data):
            text = None
        elif isinstance(exc, ValueError) and "integer string conversion" in str(exc):
            return _dumps_any_int(data)
        else:
            raise
    if text is not None and not too_deep(text):
        return text
    raise ValueError(f"{TOO_DEEP} while encoding JSON")


_CONTAINERS = (list, tuple, dict)  # what json's encoder descends into


def _children(container: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> Iterator[Any]:
    return iter(container.values() if isinstance(container, dict) else container)


def nests_too_deep(data: Any) -> bool:
    """Whether the lists, tuples and dicts in ``data`` nest deeper than ``MAX_DEPTH``.

    Iterative, so it works however deep the caller is; a container already on
    the current path (a cycle, which json reports as circular) is not entered.
    """
    if not isinstance(data, _CONTAINERS):
        return False
    path = {id(data)}
    stack = [(id(data), _children(data))]
    while stack:
        if len(stack) > MAX_DEPTH:
            return True
        key, children = stack[-1]
        for child in children:
            if isinstance(child, _CONTAINERS) and id(child) not in path:
                path.add(id(child))
                stack.append((id(child), _children(child)))
                break
        else:
            stack.pop()
            path.discard(key)
    return False


def _dumps_any_int(data: Any) -> str:
    # The 4300-digit limit guards int *parsing* against slow inputs; printing
    # an int the application holds is not an attack surface, so lift it for
    # this one call. (set_int_max_str_digits exists from 3.10.7 / 3.11.)
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return dumps(data)
    finally:
        sys.set_int_max_str_digits(limit)


# ujson and orjson print a few floats unlike repr() (json's format): ujson
# writes 1e-5 for 1e-05, orjson 0.00001 for 1e-05 and 1.5e-7 for 1.5e-07.
# The backends call fix_floats only when has_float_suspect(text) (two fast
# substring searches); a differential fuzz of 1M floats found no difference
# outside what _FLOAT_SUSPECT matches.
_FLOAT_SUSPECT = re.compile(r"e-[0-9](?![0-9])|0\.0000")
_STRING_OR_FLOAT = re.compile(
    r'"(?:[^"\\]|\\.)*"|-?[0-9]+\.[0-9]+(?:e[-+]?[0-9]+)?|-?[0-9]+e[-+]?[0-9]+', re.DOTALL
)


def _float_as_json_writes_it(match: re.Match[str]) -> str:
    token = match.group()
    # Strings pass through untouched; both codecs print the shortest digits
    # that round-trip, so float(token) is the very double they were given.
    return token if token[0] == '"' else repr(float(token))


def has_float_suspect(text: str | bytes) -> bool:
    """Whether a fast codec's JSON may print a float unlike ``json``: "e-" or "0.0000" in it."""
    if isinstance(text, str):
        return "e-" in text or "0.0000" in text
    # bytes.find, not `in`: `in` first tries the needle as an int, raising
    # and clearing a TypeError each time.
    return text.find(b"e-") >= 0 or text.find(b"0.0000") >= 0


def fix_floats(text: str) -> str:
    """``text`` (a codec's JSON) with every float printed the way ``json`` prints it."""
    if _FLOAT_SUSPECT.search(text) is None:
        return text
    return _STRING_OR_FLOAT.sub(_float_as_json_writes_it, text)


# orjson reads integers beyond 64 bits as floats, silently. Any such integer
# has at least 19 digits, so a payload without a run of 19 digits is safe;
# one with such a run (big ints, long floats, digits in strings) is parsed
# again by the standard library, which is exact. Both backends decide with
# the same rule; the compiled one scans in C.
LONG_DIGIT_RUN = 19
_LONG_DIGITS_STR = re.compile("[0-9]{%d}" % LONG_DIGIT_RUN)
_LONG_DIGITS_BYTES = re.compile(b"[0-9]{%d}" % LONG_DIGIT_RUN)


def has_long_digit_run(payload: str | bytes) -> bool:
    """Whether ``payload`` holds ``LONG_DIGIT_RUN`` ASCII digits in a row."""
    if isinstance(payload, str):
        return _LONG_DIGITS_STR.search(payload) is not None
    return _LONG_DIGITS_BYTES.search(payload) is not None


def exact_loads(payload: str | bytes) -> Any:
    """The standard library's parse of a payload orjson already accepted."""
    return loads(payload if isinstance(payload, str) else payload.decode("utf-8"))


def loads(text: str) -> Any:
    """The standard library's parse of ``text``; every failure is ``InvalidJSON``."""
    try:
        value = _decode(text)
    except json.JSONDecodeError as exc:
        # Past MAX_DEPTH, whether json reached the error or ran out of stack
        # first depends on the caller's depth: call it too deep either way.
        if too_deep(text[: exc.pos]):
            error = InvalidJSON(TOO_DEEP, text, 0)
        else:
            error = InvalidJSON(exc.msg, exc.doc, exc.pos)
    except RecursionError:
        error = InvalidJSON(TOO_DEEP, text, 0)
    except ValueError as exc:  # e.g. an int longer than the digit limit
        error = InvalidJSON(str(exc), text, 0)
    else:
        if not too_deep(text):
            return value
        error = InvalidJSON(TOO_DEEP, text, 0)
    raise error


def decode_utf8(payload: bytes | bytearray) -> str:
    """A binary frame's text; bad UTF-8 is ``InvalidJSON``, as the contract says."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        error = InvalidJSON(
            f"Binary JSON frame is not valid UTF-8 ({exc.reason})",
            payload.decode("utf-8", "replace"),
            exc.start,
        )
    raise error


def strict_error(exc: ValueError, payload: str | bytes) -> InvalidJSON:
    """The error for a payload orjson refused: json's own where json refuses it too.

    json accepts a few inputs orjson refuses (NaN, lone surrogates); those
    keep orjson's message.
    """
    try:
        loads(payload if isinstance(payload, str) else decode_utf8(payload))
    except InvalidJSON as error:
        return error
    return invalid_json(exc, getattr(exc, "doc", None) or str(payload))


def invalid_json(exc: BaseException, text: str) -> InvalidJSON:
    """The ``InvalidJSON`` for a failure of a third-party ``loads``."""
    if isinstance(exc, InvalidJSON):
        return exc
    if isinstance(exc, json.JSONDecodeError):
        return InvalidJSON(exc.msg, exc.doc, exc.pos)
    if isinstance(exc, RecursionError):
        return InvalidJSON(TOO_DEEP, text, 0)
    return InvalidJSON(str(exc) or type(exc).__name__, text, 0)


def has_non_finite_float(data: Any) -> bool:
    """Whether ``data`` holds NaN or ±Infinity, which orjson would write as ``null``."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _name(codec: object) -> str:
    return getattr(codec, "__name__", None) or type(codec).__name__


def custom_text(out: object, codec: object) -> str:
    """The text a user codec's ``dumps`` returned, checked."""
    if isinstance(out, str):
        return out
    if isinstance(out, (bytes, bytearray)):
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"json_codec {_name(codec)}.dumps() returned bytes that are not valid UTF-8") from None
    raise TypeError(f"json_codec {_name(codec)}.dumps() must return str or bytes, not {type(out).__name__}")


def custom_bytes(out: object, codec: object) -> bytes:
    """The UTF-8 bytes of what a user codec's ``dumps`` returned, checked."""
    if isinstance(out, (bytes, bytearray)):
        custom_text(out, codec)  # validates the UTF-8
        return bytes(out)
    return custom_text(out, codec).encode("utf-8")


ORJSON_MISSING = 'json_codec="orjson" needs the orjson package: pip install "bocadillo_ws[orjson]"'


_shared: dict[Any, Any] = {}


def resolve(spec: object, named: dict[str, Any], custom: Any) -> Any:
    """The codec object for ``json_codec=spec``, from one backend's codec classes."""
    if isinstance(spec, str):
        try:
            factory = named[spec]
        except KeyError:
            names = ", ".join(repr(n) for n in named)
            raise ValueError(
                f"Unknown json_codec {spec!r}: expected one of {names}, "
                "or an object with dumps() and loads()"
            ) from None
        # Named codecs hold no state: one instance per backend serves every
        # connection (a connection object stays as small as Starlette's).
        codec = _shared.get(factory)
        if codec is None:
            codec = _shared[factory] = factory()
        return codec
    if not (callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None))):
        raise TypeError(
            f"json_codec must be 'ujson', 'orjson', 'json' or an object with dumps() and loads(), "
            f"not {type(spec).__name__}"
        )
    return custom(spec)
