"""Receive-side limits: message size and rate, for both backends alike.

A limited connection reads its frames through ``limit_receive``'s wrapper
around the server's ``receive``; an unlimited one keeps the server's own
callable, so the limits cost nothing when unused. The wrapper sits below
both backends' message methods and Starlette's state machine, so every way
of receiving (typed, raw events, the rare paths) is held to the same limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from time import monotonic
from typing import Any

from starlette.types import Message, Receive

from ._errors import MessageTooBig, RateLimited


def check_limits(max_size: object, max_rate: object, max_burst: object) -> tuple[int | None, float | None, int]:
    """The validated ``(max_size, max_rate, max_burst)``; a ``TypeError``/``ValueError`` naming the bad one."""
    if max_size is not None:
        if type(max_size) is not int:  # bool is not a size
            raise TypeError(f"max_size must be an int or None, not {type(max_size).__name__}")
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0, not {max_size}")
    if max_rate is None:
        if max_burst is not None:
            raise ValueError("max_burst needs max_rate")
        return max_size, None, 0
    if isinstance(max_rate, bool) or not isinstance(max_rate, (int, float)):
        raise TypeError(f"max_rate must be a number or None, not {type(max_rate).__name__}")
    if not (max_rate > 0 and math.isfinite(max_rate)):
        raise ValueError(f"max_rate must be a positive, finite number of messages per second, not {max_rate}")
    if max_burst is None:
        max_burst = max(1, math.ceil(max_rate))
    elif type(max_burst) is not int:
        raise TypeError(f"max_burst must be an int or None, not {type(max_burst).__name__}")
    elif max_burst < 1:
        raise ValueError(f"max_burst must be >= 1, not {max_burst}")
    return max_size, float(max_rate), max_burst


def utf8_size(text: str, limit: int) -> int:
    """``len(text.encode())``, computed only when it can matter for ``limit``."""
    n = len(text)
    if n > limit or n * 4 <= limit or text.isascii():
        return n  # over either way, under either way, or one byte per character
    return len(text.encode("utf-8", "surrogatepass"))


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; one per message."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = monotonic()

    def take(self) -> bool:
        now = monotonic()
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


def limit_receive(receive: Receive, max_size: int | None, max_rate: float | None, max_burst: int) -> Receive:
    """``receive`` itself when there are no limits, else a wrapper that enforces them."""
    if max_size is None and max_rate is None:
        return receive
    take = None if max_rate is None else TokenBucket(max_rate, max_burst).take
    size_limit = -1 if max_size is None else max_size

    async def receive_within_limits() -> Message:
        event = await receive()
        # Plain dicts (every server's events) first: an ABC isinstance costs more than the rest.
        if (type(event) is dict or isinstance(event, Mapping)) and event.get("type") == "websocket.receive":
            if size_limit >= 0:
                _check_size(event, size_limit)
            if take is not None and not take():
                raise RateLimited(max_rate, max_burst)  # type: ignore[arg-type]  # take is set only with a rate
        return event

    return receive_within_limits


def _check_size(event: Mapping[str, Any], max_size: int) -> None:
    text = event.get("text")
    if type(text) is str:
        size = len(text)
        if size * 4 <= max_size:  # under the limit whatever the characters
            return
        if size <= max_size and not text.isascii():
            size = len(text.encode("utf-8", "surrogatepass"))
    elif isinstance(text, str):
        size = utf8_size(text, max_size)
    else:
        data = event.get("bytes")
        size = len(data) if isinstance(data, (bytes, bytearray)) else 0
    if size > max_size:
        raise MessageTooBig(size, max_size)
