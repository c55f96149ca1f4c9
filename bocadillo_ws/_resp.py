"""Replies of a subscribed Redis connection (RESP2), parsed in batches.

The Hub's reader reads whatever the socket has (often hundreds of messages
at once) and parses it here: redis-py parses one reply per await, through
several layers, which capped what one process could drain.
"""

from __future__ import annotations

from typing import Any

_INCOMPLETE = object()


class ReplyError(Exception):
    """An error reply (``-ERR ...``)."""


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
        while self._position < len(buffer):
            value, position = _parse(buffer, self._position)
            if value is _INCOMPLETE:
                break
            out.append(value)
            self._position = position
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
        if len(buffer) < position + size + 2:
            return _INCOMPLETE, position
        return bytes(buffer[position : position + size]), position + size + 2
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
    raise ValueError(f"not a RESP2 reply: {bytes(buffer[position - len(line) - 3 : position])!r}")
