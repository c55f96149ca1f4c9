"""The Hub's RESP2 (bocadillo_ws._resp): the parser fed in every possible split, and commands encoded."""

from __future__ import annotations

import pytest

from bocadillo_ws._resp import ProtocolError, ReplyError, RespParser, command

WIRE = (
    b"*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n"
    b"*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$6\r\nhi\r\n\x00\xff\r\n"
    b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    b"+PONG\r\n"
    b"$-1\r\n"
    b"-ERR wrong\r\n"
)


def check(replies: list[object]) -> None:
    assert replies[:5] == [
        [b"subscribe", b"room", 1],
        [b"message", b"room", b"hi\r\n\x00\xff"],
        [b"pong", b""],
        b"PONG",
        None,
    ]
    assert isinstance(replies[5], ReplyError) and str(replies[5]) == "ERR wrong"
    assert len(replies) == 6


def test_whole() -> None:
    parser = RespParser()
    parser.feed(WIRE)
    check(parser.replies())
    assert parser.replies() == []


@pytest.mark.parametrize("cut", range(1, len(WIRE)))
def test_split_anywhere(cut: int) -> None:
    parser = RespParser()
    parser.feed(WIRE[:cut])
    replies = parser.replies()
    parser.feed(WIRE[cut:])
    check(replies + parser.replies())


def test_byte_by_byte() -> None:
    parser = RespParser()
    replies: list[object] = []
    for i in range(len(WIRE)):
        parser.feed(WIRE[i : i + 1])
        replies += parser.replies()
    check(replies)


def test_garbage_is_an_error() -> None:
    parser = RespParser()
    parser.feed(b"?what\r\n")
    with pytest.raises(ValueError, match="not a RESP2 reply"):
        parser.replies()


@pytest.mark.parametrize(
    "wire",
    [
        b"$abc\r\nxyz\r\n",  # a length that is not a number
        b"*x\r\n",
        b":1.5\r\n",  # an integer that is not one
        b"$3\r\nabcXY",  # a bulk string not followed by CRLF
    ],
)
def test_a_stream_that_is_not_resp_is_a_protocol_error(wire: bytes) -> None:
    parser = RespParser()
    parser.feed(wire)
    with pytest.raises(ProtocolError, match="not a RESP2 reply"):
        parser.replies()


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert command(b"PING") == b"*1\r\n$4\r\nPING\r\n"
    data = command(b"PUBLISH", b"room", b"a\r\n\x00\xff", b"")
    assert data == b"*4\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$5\r\na\r\n\x00\xff\r\n$0\r\n\r\n"
    parser = RespParser()  # read back as Redis would
    parser.feed(data)
    assert parser.replies() == [[b"PUBLISH", b"room", b"a\r\n\x00\xff", b""]]
