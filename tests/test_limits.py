"""Receive-side limits: ``max_size`` (1009) and ``max_rate``/``max_burst`` (1008), on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_helpers import SCOPE, Transport, binary, connect, disconnect, drive, text
from bocadillo_ws import MessageError, MessageTooBig, RateLimited
from bocadillo_ws._limits import TokenBucket, check_limits, utf8_size


def opened(WebSocket: type[Any], *events: dict[str, Any], **options: Any) -> tuple[Any, Transport]:
    transport = Transport(connect(), *events)
    ws = WebSocket(dict(SCOPE), transport.receive, transport.send, **options)
    drive(ws.accept())
    return ws, transport


@pytest.mark.parametrize("method", ["receive_text", "receive_json", "receive", "receive_event"])
def test_text_at_the_limit_passes_and_over_it_is_too_big(WebSocket: type[Any], method: str) -> None:
    ws, _ = opened(WebSocket, text('"ééé"'), text('"éééé"'), max_size=8, value_type="json")
    assert drive(getattr(ws, method)()) in ('"ééé"', "ééé", {"type": "websocket.receive", "text": '"ééé"'})
    with pytest.raises(MessageTooBig) as info:  # 10 UTF-8 bytes in 6 characters
        drive(getattr(ws, method)())
    assert (info.value.close_code, info.value.max_size, info.value.size) == (1009, 8, 10)
    assert isinstance(info.value, MessageError)


def test_bytes_limit_and_the_close_code_on_exit(WebSocket: type[Any]) -> None:
    ws, transport = opened(WebSocket, binary(b"1234"), binary(b"12345"), max_size=4, value_type="bytes")

    async def view() -> None:
        async with ws:
            while True:
                await ws.receive()

    with pytest.raises(MessageTooBig, match="at least 5 bytes exceeds max_size=4"):
        drive(view())
    assert transport.sent[-1] == {"type": "websocket.close", "code": 1009, "reason": ""}


def test_rate_limit_closes_with_1008(WebSocket: type[Any]) -> None:
    # A burst of 3 at 0.001/s: the 4th message in a row is over the limit.
    ws, transport = opened(WebSocket, *(text(str(i)) for i in range(5)), max_rate=0.001, max_burst=3)

    async def view() -> list[str]:
        seen = []
        async with ws:
            async for message in ws:
                seen.append(message)
        return seen

    with pytest.raises(RateLimited) as info:
        drive(view())
    assert (info.value.close_code, info.value.max_burst) == (1008, 3)
    assert transport.sent[-1] == {"type": "websocket.close", "code": 1008, "reason": ""}


def test_limits_do_not_count_control_events(WebSocket: type[Any]) -> None:
    ws, _ = opened(WebSocket, text("x"), disconnect(1001), max_rate=0.001, max_burst=1, max_size=0)
    with pytest.raises(MessageTooBig):
        drive(ws.receive_text())  # one byte over max_size=0; it used the one token
    with pytest.raises(Exception) as info:
        drive(ws.receive_text())
    assert type(info.value).__name__ == "WebSocketDisconnect" and info.value.code == 1001  # type: ignore[attr-defined]


def test_no_limits_keep_the_servers_receive(WebSocket: type[Any]) -> None:
    transport = Transport()
    ws = WebSocket(dict(SCOPE), transport.receive, transport.send)
    assert ws._receive == transport.receive  # nothing in between: no cost when unused
    limited = WebSocket(dict(SCOPE), transport.receive, transport.send, max_size=10)
    assert limited._receive != transport.receive


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_size": -1}, ValueError, "max_size must be >= 0"),
        ({"max_size": 1.5}, TypeError, "max_size must be an int or None, not float"),
        ({"max_size": True}, TypeError, "not bool"),
        ({"max_rate": 0}, ValueError, "max_rate must be a positive"),
        ({"max_rate": float("inf")}, ValueError, "max_rate must be a positive"),
        ({"max_rate": "10"}, TypeError, "max_rate must be a number"),
        ({"max_burst": 3}, ValueError, "max_burst needs max_rate"),
        ({"max_rate": 5, "max_burst": 0}, ValueError, "max_burst must be >= 1"),
    ],
)
def test_bad_limits_are_refused_at_construction(
    WebSocket: type[Any], options: dict[str, Any], error: type[Exception], message: str
) -> None:
    transport = Transport()
    with pytest.raises(error, match=message):
        WebSocket(dict(SCOPE), transport.receive, transport.send, **options)


def test_default_burst_and_bucket_refill() -> None:
    assert check_limits(None, 2.5, None) == (None, 2.5, 3)
    bucket = TokenBucket(1000.0, 2)
    assert bucket.take() and bucket.take() and not bucket.take()
    bucket.stamp -= 0.002  # two milliseconds later: two tokens at 1,000/s
    assert bucket.take() and bucket.take() and not bucket.take()


@pytest.mark.parametrize(
    ("value", "limit", "size"),
    [("abc", 10, 3), ("é" * 3, 10, 6), ("é" * 3, 2, 3), ("€", 3, 3), ("😀", 3, 4), ("\udc80", 3, 3)],
)
def test_utf8_size(value: str, limit: int, size: int) -> None:
    assert utf8_size(value, limit) == size
