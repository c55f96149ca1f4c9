"""One connection to Redis, opened with asyncio and spoken to in RESP2 (``_resp``).

``open_connection`` connects (TCP, TLS or a Unix socket), logs in (``AUTH``),
selects the database, names the connection (``CLIENT SETNAME``) and waits
for the replies, all within one timeout: a frozen Redis accepts TCP
connections but never answers, and that must count as down. The hub's
subscriber and publisher are each one of these.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from ._redis_url import RedisAddress
from ._resp import ReplyError, RespParser, command

READ_SIZE = 1 << 16
# Error replies to the handshake that say "not now" rather than "never".
_TRANSIENT_ERRORS = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "ERR max number of clients")


class RedisRefused(Exception):
    """Redis refused the handshake (wrong password, unknown database, no permission): retrying will not help."""


class RedisConnection:
    """A connected, logged-in Redis connection: write commands, read replies."""

    __slots__ = ("_parser", "_reader", "_writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = RespParser()

    def send(self, data: bytes) -> None:
        """Queue ``data`` for the socket (never blocks; ``drain()`` waits for room)."""
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    async def read(self) -> list[Any]:
        """The replies that the next bytes from Redis complete (maybe none); ``ConnectionError`` at the end."""
        data = await self._reader.read(READ_SIZE)
        if not data:
            raise ConnectionError("Redis closed the connection")
        self._parser.feed(data)
        return self._parser.replies()

    async def replies(self, count: int) -> list[Any]:
        """The next ``count`` replies."""
        out = self._parser.replies()
        while len(out) < count:
            out += await self.read()
        if len(out) > count:
            raise ConnectionError(f"Redis sent {len(out) - count} replies nothing asked for")
        return out

    def broken(self) -> bool:
        """Redis closed it, or we did (what an idle connection learns without a read)."""
        return self._reader.at_eof() or self._writer.is_closing()

    def close(self) -> None:
        """Close at once: no goodbye to a Redis that may be frozen (TLS close_notify included)."""
        self._writer.transport.abort()


async def open_connection(
    address: RedisAddress, ssl_context: ssl.SSLContext | None, name: str, *, within: float
) -> RedisConnection:
    """Connect and hand-shake within ``within`` seconds; ``RedisRefused`` when Redis says no for good."""
    async with asyncio.timeout(within):
        if address.path is not None:
            reader, writer = await asyncio.open_unix_connection(address.path)
        else:
            reader, writer = await asyncio.open_connection(
                address.host, address.port, ssl=ssl_context, server_hostname=address.host if ssl_context else None
            )
            sock = writer.get_extra_info("socket")
            if sock is not None:  # a dead peer is found even on a connection left idle
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        connection = RedisConnection(reader, writer)
        try:
            await _handshake(connection, address, name)
        except ConnectionError as exc:
            connection.close()
            if ssl_context is None:
                raise
            # TLS 1.3: a server that wants a client certificate checks it after
            # the handshake completed here, and resets the connection.
            hint = "does it want a client certificate (ssl_certfile, ssl_keyfile)?"
            raise RedisRefused(f"Redis closed the TLS connection before answering ({exc!r}): {hint}") from exc
        except BaseException:
            connection.close()
            raise
    return connection


async def _handshake(connection: RedisConnection, address: RedisAddress, name: str) -> None:
    # Pipelined: one round trip. RESP2 is what a new connection speaks
    # until HELLO says otherwise, and the hub never sends HELLO.
    commands: list[tuple[str, bytes]] = []
    if address.password is not None:
        credentials = [address.password.encode()]
        if address.username is not None:
            credentials.insert(0, address.username.encode())
        commands.append(("AUTH", command(b"AUTH", *credentials)))
    if address.db:
        commands.append(("SELECT", command(b"SELECT", b"%d" % address.db)))
    commands.append(("CLIENT SETNAME", command(b"CLIENT", b"SETNAME", name.encode())))
    connection.send(b"".join(data for _, data in commands))
    replies = await connection.replies(len(commands))
    for (what, _), reply in zip(commands, replies):
        if isinstance(reply, ReplyError):
            message = f"{what} failed: {reply}"
            if str(reply).startswith(_TRANSIENT_ERRORS):
                raise ConnectionError(message)
            raise RedisRefused(message)
