"""The Redis side of ``bocadillo_ws.Hub``: rooms shared by every process on one Redis.

Two connections per process: one subscriber, read by one reader task, and
one publisher. The reader never dies: on any error but cancellation it
closes its connection, reconnects with backoff, resubscribes every room and
reports the gap (Redis pub/sub is at-most-once: what was published during
the outage is gone). It only hands frames to the hub's members, which never
waits on a socket (slow members have mailboxes), so Redis never sees a slow
subscriber. A PING when the connection is idle finds a half-open one.

Wire format of a message: the origin process id (16 ASCII bytes), the kind
(``t`` text, ``b`` bytes), the payload (UTF-8 for text).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from typing import TYPE_CHECKING, Any

try:
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry  # the asyncio one: redis-py 8 warns when given the sync Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("Hub(url) needs redis-py: pip install 'bocadillo_ws[redis]'") from exc

from ._hub import HubUnavailable
from ._resp import ReplyError, RespParser

if TYPE_CHECKING:
    from ._hub import Hub

logger = logging.getLogger("bocadillo_ws.hub")

# Timings (docs/hub.md says why).
PUBLISH_TIMEOUT = 0.5  # a publish that Redis did not take by then raises HubUnavailable
CONNECT_TIMEOUT = 0.5  # a connect or a SUBSCRIBE reply that takes longer is an outage
PING_INTERVAL = 1.0  # idle this long: PING; no reply within another interval: reconnect
BACKOFF_FIRST = 0.025
BACKOFF_MAX = 0.5  # well under 1 s, so rooms are back within 1 s of Redis returning, on a busy machine too
SUBSCRIBE_WAIT = 1.0  # join() waits this long for the subscription, then goes on (gap reported later)
ORIGIN_BYTES = 16
READ_SIZE = 1 << 16


class RedisLink:
    """One hub's link to Redis: a reader task on a subscriber connection, and a publisher."""

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        self._hub = hub
        self._url = url
        self._prefix = prefix.encode()
        self.origin = os.urandom(ORIGIN_BYTES // 2).hex().encode()
        self._wanted: set[bytes] = set()  # channels with local members
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._connection: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._publisher: Redis | None = None
        self._up = asyncio.Event()
        self.connected = False

    def _kwargs(self) -> dict[str, Any]:
        # No retries of redis-py's own: this module decides what an outage means.
        return {
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_keepalive": True,
            "retry": Retry(NoBackoff(), 0),
            "retry_on_timeout": False,
            # CLIENT LIST shows whose connections these are.
            "client_name": f"bocadillo_ws-hub-{os.getpid()}",
        }

    async def start(self) -> None:
        if self._reader is not None:
            return
        pool = BlockingConnectionPool.from_url(
            self._url, max_connections=1, timeout=PUBLISH_TIMEOUT, socket_timeout=PUBLISH_TIMEOUT, **self._kwargs()
        )
        self._publisher = Redis(connection_pool=pool)
        self._reader = asyncio.get_running_loop().create_task(self._run())
        try:  # open the publisher's connection now, not on the first publish
            await asyncio.wait_for(self._publisher.ping(), CONNECT_TIMEOUT)
        except (TimeoutError, RedisError, OSError) as exc:
            logger.debug("Hub: Redis publisher not connected yet: %r", exc)
        # Give the first connection a moment, so that rooms joined at once are live.
        try:
            await asyncio.wait_for(self._up.wait(), SUBSCRIBE_WAIT)
        except TimeoutError:
            logger.warning("Hub: Redis at %s not reachable yet; retrying in the background", self._url)

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await self._drop_connection()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.aclose()
            await publisher.connection_pool.disconnect()

    # ------------------------------------------------------------------ rooms

    def channel(self, room: str) -> bytes:
        return self._prefix + room.encode()

    async def subscribe(self, room: str) -> None:
        """Subscribe ``room``'s channel; wait briefly for Redis to confirm (never fails: a gap is reported instead)."""
        channel = self.channel(room)
        self._wanted.add(channel)
        if not self.connected:
            return
        event = self._confirmed.setdefault(channel, asyncio.Event())
        try:
            await self._connection.send_command("SUBSCRIBE", channel)
            await asyncio.wait_for(event.wait(), SUBSCRIBE_WAIT)
        except (TimeoutError, RedisError, OSError) as exc:
            logger.debug("Hub: SUBSCRIBE %r not confirmed: %r", channel, exc)  # the reader reconnects

    async def unsubscribe(self, room: str) -> None:
        channel = self.channel(room)
        self._wanted.discard(channel)
        self._confirmed.pop(channel, None)
        if self.connected:
            try:
                await self._connection.send_command("UNSUBSCRIBE", channel)
            except (RedisError, OSError) as exc:
                logger.debug("Hub: UNSUBSCRIBE %r failed: %r", channel, exc)

    # ------------------------------------------------------------------ publishing

    async def publish(self, room: str, kind: str, payload: str | bytes) -> None:
        publisher = self._publisher
        if publisher is None:
            raise HubUnavailable("the hub is not running: use `async with hub` or lifespan=hub.lifespan")
        body = payload.encode() if isinstance(payload, str) else payload
        message = b"".join((self.origin, kind.encode(), body))
        try:
            await asyncio.wait_for(self._publish(publisher, self.channel(room), message), PUBLISH_TIMEOUT)
        except (TimeoutError, RedisError, OSError) as exc:
            problem = f"Redis did not take the message for room {room!r} (delivered locally only): {exc!r}"
            raise HubUnavailable(problem) from exc

    @staticmethod
    async def _publish(publisher: Redis, channel: bytes, message: bytes) -> None:
        try:
            await publisher.publish(channel, message)
        except RedisConnectionError:
            # The idle connection may be stale (Redis restarted since): the
            # failed one is closed; one more try on a new one, within the budget.
            await publisher.publish(channel, message)

    # ------------------------------------------------------------------ the reader

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        failed = False
        while True:
            try:
                await self._connect()
                if failed:
                    self._hub.redis_reconnects += 1
                    rooms = self._rooms()
                    if rooms:  # a room with no member here missed nothing here
                        self._hub.report_gap(rooms)
                failed = False
                backoff = BACKOFF_FIRST
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failed:
                    logger.warning("Hub: Redis subscriber lost (%s: %s); reconnecting", type(exc).__name__, exc)
                failed = True
            finally:
                self.connected = False
                self._up.clear()
                await self._drop_connection()
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _rooms(self) -> list[str]:
        size = len(self._prefix)
        return sorted(channel[size:].decode() for channel in self._wanted)

    async def _connect(self) -> None:
        # protocol=2: RESP2 is what _resp parses (a URL asking for 3 is refused by _read).
        pool = BlockingConnectionPool.from_url(
            self._url, max_connections=1, socket_timeout=None, protocol=2, **self._kwargs()
        )
        connection = self._connection = pool.make_connection()  # type: ignore[no-untyped-call]
        await asyncio.wait_for(connection.connect(), CONNECT_TIMEOUT)
        # PING first: a frozen Redis accepts the TCP connection but never answers.
        await connection.send_command("PING")
        reply = await connection.read_response(timeout=CONNECT_TIMEOUT, push_request=True)
        if reply is None:
            raise ConnectionError("Redis did not answer PING")
        # From here a join sends its own SUBSCRIBE (connected is True before
        # the next await): no room joined meanwhile is missed.
        channels = sorted(self._wanted)
        self._confirmed = {channel: asyncio.Event() for channel in channels}
        self.connected = True
        self._up.set()
        if channels:
            await connection.send_command("SUBSCRIBE", *channels)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.disconnect(nowait=True)
            except Exception as exc:  # closing a broken socket: nothing more to do
                logger.debug("Hub: closing the Redis subscriber failed: %r", exc)

    async def _read(self) -> None:
        connection = self._connection
        # The socket's stream, read in bulk and parsed here (RESP2, see
        # _resp): redis-py's connection did the handshake (AUTH, SELECT, TLS).
        stream = connection._reader
        parser = RespParser()
        waiting_pong = False
        while True:
            try:
                data = await asyncio.wait_for(stream.read(READ_SIZE), PING_INTERVAL)
            except TimeoutError:
                if waiting_pong:
                    problem = f"no reply to PING within {PING_INTERVAL} s (half-open connection?)"
                    raise ConnectionError(problem) from None
                await connection.send_command("PING")
                waiting_pong = True
                continue
            if not data:
                raise ConnectionError("Redis closed the connection")
            waiting_pong = False
            parser.feed(data)
            for reply in parser.replies():
                self._handle(reply)

    def _handle(self, reply: Any) -> None:
        if type(reply) is not list or not reply:
            if isinstance(reply, ReplyError):
                raise reply
            return  # PONG outside subscribed mode
        kind = reply[0]
        if kind == b"message":
            channel, data = reply[1], reply[2]
            if data[:ORIGIN_BYTES] == self.origin:
                return  # our own publish: delivered locally already
            if channel not in self._wanted:
                return  # unsubscribed while it was in flight
            room = channel[len(self._prefix) :].decode()
            if data[ORIGIN_BYTES : ORIGIN_BYTES + 1] == b"t":
                self._hub.deliver_local(room, "t", data[ORIGIN_BYTES + 1 :].decode())
            else:
                self._hub.deliver_local(room, "b", data[ORIGIN_BYTES + 1 :])
        elif kind == b"subscribe":
            event = self._confirmed.get(reply[1])
            if event is not None:
                event.set()
