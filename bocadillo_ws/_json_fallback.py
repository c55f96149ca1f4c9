"""The exact, slow side of every JSON codec, shared by both backends.

The fast codecs (ujson, orjson) disagree with the standard library on errors
and on a few inputs. When one of them fails, the backends call these
functions, which give the standard library's result or exception, mapped to
the contract: ``InvalidJSON`` on receive, ``TypeError``/``ValueError`` on send,
never a ``RecursionError``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ._errors import InvalidJSON

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_decode = json.JSONDecoder().decode

TOO_DEEP = "Maximum nesting depth exceeded"


def dumps(data: Any) -> str:
    """Compact JSON text, as Starlette writes it, but never NaN or Infinity."""
    try:
        return _encode(data)
    except RecursionError:
        pass
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
        return _dumps_any_int(data)
    raise ValueError(f"{TOO_DEEP} while encoding JSON")


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


def loads(text: str) -> Any:
    """The standard library's parse of ``text``; every failure is ``InvalidJSON``."""
    try:
        return _decode(text)
    except json.JSONDecodeError as exc:
        error = InvalidJSON(exc.msg, exc.doc, exc.pos)
    except RecursionError:
        error = InvalidJSON(TOO_DEEP, text, 0)
    except ValueError as exc:  # e.g. an int longer than the digit limit
        error = InvalidJSON(str(exc), text, 0)
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
        return factory()
    if not (callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None))):
        raise TypeError(
            f"json_codec must be 'ujson', 'orjson', 'json' or an object with dumps() and loads(), "
            f"not {type(spec).__name__}"
        )
    return custom(spec)
