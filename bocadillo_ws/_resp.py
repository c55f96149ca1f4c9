"""RESP2, both ways: commands encoded, replies parsed in batches.

The Hub's connections read whatever the socket has (often hundreds of
replies at once) and parse it here: one reply per await, through several
layers, is what capped a process's throughput with redis-py.
"""

from __future__ import annotations

from typing import Any

_INCOMPLETE = object()


class ReplyError(Exception):
    """An error reply (``-ERR ...``)."""


class ProtocolError(ValueError):
    """The stream is not RESP2: the connection cannot be read any further."""


def command(*args: bytes) -> bytes:
    """One command as Redis reads it (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


class RespParser:
    """Feed bytes, take the complete replies: bulk strings as bytes, arrays as lists."""

    __slots__ = ("_buffer", "_position")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0

    def feed(self, data: bytes) -> None:
        if self._position:
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += data

    def replies(self) -> list[Any]:
        """Every complete reply in the buffer, in order; an incomplete one stays for the next feed."""
        out = []
        buffer = self._buffer
        try:
            while self._position < len(buffer):
                value, position = _parse(buffer, self._position)
                if value is _INCOMPLETE:
                    break
                out.append(value)
                self._position = position
        except ProtocolError:
            raise
        except ValueError:  # a length or an integer that is not a number
            where = bytes(buffer[self._position : self._position + 40])
            raise ProtocolError(f"not a RESP2 reply: {where!r}") from None
        return out


def _parse(buffer: bytearray, position: int) -> tuple[Any, int]:
    end = buffer.find(b"\r\n", position)
    if end < 0:
        return _INCOMPLETE, position
    kind = buffer[position]
    line = buffer[position + 1 : end]
    position = end + 2
    if kind == 36:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, position
        end = position + size
        if len(buffer) < end + 2:
            return _INCOMPLETE, position
        if buffer[end : end + 2] != b"\r\n":
            raise ProtocolError(f"not a RESP2 reply: a bulk string of {size} bytes not followed by CRLF")
        return bytes(buffer[position:end]), end + 2
    if kind == 42:  # * array
        count = int(line)
        if count < 0:
            return None, position
        items = []
        for _ in range(count):
            item, position = _parse(buffer, position)
            if item is _INCOMPLETE:
                return _INCOMPLETE, position
            items.append(item)
        return items, position
    if kind == 58:  # : integer
        return int(line), position
    if kind == 43:  # + simple string
        return bytes(line), position
    if kind == 45:  # - error
        return ReplyError(line.decode(errors="replace")), position
    raise ProtocolError(f"not a RESP2 reply: {bytes(buffer[position - len(line) - 3 : position])!r}")
