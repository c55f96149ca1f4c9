"""The message types a WebSocket can be told to receive and send."""

from __future__ import annotations

# The position of a name is its code in both backends.
MESSAGE_TYPES = ("text", "bytes", "json", "event")
TEXT, BYTES, JSON, EVENT = range(4)

# WebSocketState values, as plain ints for the hot path.
CONNECTING, CONNECTED, DISCONNECTED, RESPONSE = range(4)


def message_type_code(name: object, parameter: str) -> int:
    """The code of a message type name; a ValueError naming the allowed ones otherwise."""
    try:
        return MESSAGE_TYPES.index(name)  # type: ignore[arg-type,unused-ignore]
    except ValueError:
        allowed = ", ".join(repr(t) for t in MESSAGE_TYPES)
        raise ValueError(f"{parameter} must be one of {allowed}, not {name!r}") from None
