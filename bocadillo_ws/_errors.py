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
