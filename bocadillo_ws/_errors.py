"""Errors raised for bad messages, shared by both backends."""

from __future__ import annotations

import json


class MessageError(ValueError):
    """A message that the application cannot accept.

    ``close_code`` is what ``async with ws`` closes the connection with when
    the error escapes the block.
    """

    # 1008 "policy violation" is the generic close code for a message the
    # endpoint refuses; the subclasses below have precise codes.
    close_code: int = 1008


class UnexpectedMessageType(MessageError):
    """A frame of the wrong kind arrived (text expected, bytes came, or the reverse)."""

    close_code = 1003

    def __init__(self, expected: str, received: str) -> None:
        self.expected = expected
        self.received = received
        super().__init__(f"Expected a {expected} frame, but received a {received} frame.")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.expected, self.received))


class InvalidJSON(MessageError, json.JSONDecodeError):
    """The payload is not valid JSON, or a binary JSON frame is not valid UTF-8.

    Also a ``json.JSONDecodeError`` (with ``msg``, ``doc``, ``pos``, ``lineno``
    and ``colno``), so handlers written for Starlette keep working.
    """

    close_code = 1007

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        json.JSONDecodeError.__init__(self, msg, doc, pos)


class MessageTooBig(MessageError):
    """A message larger than the connection's ``max_size`` (bytes; text counts as UTF-8)."""

    close_code = 1009

    def __init__(self, size: int, max_size: int) -> None:
        self.size = size
        self.max_size = max_size
        # `size` is exact for bytes, a lower bound for text far over the limit (not encoded).
        super().__init__(f"A message of at least {size} bytes exceeds max_size={max_size}.")

    def __reduce__(self) -> tuple[type, tuple[int, int]]:
        return (type(self), (self.size, self.max_size))


class RateLimited(MessageError):
    """The peer sent messages faster than the connection's ``max_rate`` (with ``max_burst``) allows."""

    close_code = 1008

    def __init__(self, max_rate: float, max_burst: int) -> None:
        self.max_rate = max_rate
        self.max_burst = max_burst
        super().__init__(f"More than {max_rate:g} messages per second (burst {max_burst}).")

    def __reduce__(self) -> tuple[type, tuple[float, int]]:
        return (type(self), (self.max_rate, self.max_burst))
