"""The Redis side of ``bocadillo_ws.Hub``: rooms shared by every process on one Redis.

Two connections per process, both our own (``_redis_connection``: asyncio
streams, RESP2 through ``_resp``; no client library): one subscriber, read
by one reader task, and one publisher, written by one writer task
(``_redis_publisher``: batches, a timeout per batch, no retries).

The reader never dies: on any error but cancellation it closes its
connection, reconnects with backoff, resubscribes every room and reports
the gap (Redis pub/sub is at-most-once: what was published during the
outage is gone). It only hands frames to the hub's members, which never
waits on a socket (slow members have mailboxes), so Redis never sees a slow
subscriber. A PING when the connection is idle finds a half-open one. A
message it cannot read (too short, an unknown kind, text that is not UTF-8)
is counted, logged now and then, and skipped: the rest of the stream goes on.

Wire format of a message: the origin process id (16 ASCII bytes), the kind
(``t`` text, ``b`` bytes), the payload (UTF-8 for text).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import time
from typing import TYPE_CHECKING, Any

from ._hub import HubUnavailable
from ._redis_connection import RedisConnection, RedisRefused, open_connection
from ._redis_publisher import BatchPublisher
from ._redis_url import parse_redis_url
from ._resp import ProtocolError, ReplyError, command

if TYPE_CHECKING:
    from ._hub import Hub

logger = logging.getLogger("bocadillo_ws.hub")

# Timings (docs/hub.md says why).
PUBLISH_TIMEOUT = 0.5  # a publish batch that Redis did not answer by then: the connection is broken
CONNECT_TIMEOUT = 0.5  # a connect (handshake included) that takes longer is an outage
PING_INTERVAL = 1.0  # idle this long: PING; no reply within another interval: reconnect
BACKOFF_FIRST = 0.025
BACKOFF_MAX = 0.5  # well under 1 s, so rooms are back within 1 s of Redis returning, on a busy machine too
SUBSCRIBE_WAIT = 1.0  # join() waits this long for the subscription, then goes on (gap reported later)
MALFORMED_LOG_EVERY = 10.0  # s between two log lines about malformed messages
ORIGIN_BYTES = 16
_PING = command(b"PING")


class _ThrottledLog:
    """At most one warning per ``every`` seconds; the ones held back are counted in the next."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._next = 0.0
        self._held = 0

    def warning(self, message: str, *args: object) -> None:
        self._log(logging.WARNING, message, args, False)

    def exception(self, message: str, *args: object) -> None:
        self._log(logging.ERROR, message, args, True)

    def _log(self, level: int, message: str, args: tuple[object, ...], exc_info: bool) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return
        self._next = now + self.every
        held, self._held = self._held, 0
        if held:
            message += " (and %d more since the last report)"
            args = (*args, held)
        logger.log(level, message, *args, exc_info=exc_info)


class RedisLink:
    """One hub's link to Redis: a reader task on a subscriber connection, and a batching publisher."""

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        self._hub = hub
        self._address = parse_redis_url(url)  # a URL the hub cannot use is refused here, at Hub(url)
        self._ssl = self._address.tls.context() if self._address.tls is not None else None
        self._prefix = prefix.encode()
        self.origin = os.urandom(ORIGIN_BYTES // 2).hex().encode()
        self._tags = {"t": self.origin + b"t", "b": self.origin + b"b"}
        self._wanted: dict[bytes, str] = {}  # channel -> room, for rooms with local members
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._connection: RedisConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._publisher = BatchPublisher(self._open, PUBLISH_TIMEOUT)
        self._up = asyncio.Event()
        self._malformed_log = _ThrottledLog(MALFORMED_LOG_EVERY)
        self._deliver_log = _ThrottledLog(MALFORMED_LOG_EVERY)
        self.connected = False

    async def _open(self) -> RedisConnection:
        # CLIENT LIST shows whose connections these are.
        name = f"bocadillo_ws-hub-{os.getpid()}"
        return await open_connection(self._address, self._ssl, name, within=CONNECT_TIMEOUT)

    async def start(self) -> None:
        """Connect both connections; ``HubUnavailable`` (and nothing left running) when Redis refuses for good.

        A wrong password or a certificate that does not verify is refused at
        once. Redis merely unreachable is not an error: the hub starts, works
        locally, and connects in the background.
        """
        if self._reader is not None:
            return
        try:
            connection = await self._open()
        except (RedisRefused, ssl.SSLError) as exc:
            raise HubUnavailable(f"Redis at {self._address} refused the hub's connection: {exc}") from exc
        except ProtocolError as exc:
            raise HubUnavailable(f"{self._address} answered in something that is not RESP2 (Redis?): {exc}") from exc
        except (OSError, TimeoutError) as exc:
            connection = None
            logger.warning("Hub: Redis at %s not reachable yet (%r); retrying in the background", self._address, exc)
        try:
            self._publisher.start(connection)
            self._reader = asyncio.get_running_loop().create_task(self._run())
            # Give the subscriber a moment, so that rooms joined at once are live.
            try:
                await asyncio.wait_for(self._up.wait(), SUBSCRIBE_WAIT)
            except TimeoutError:
                logger.warning("Hub: Redis subscriber at %s not connected yet; retrying in background", self._address)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop both tasks: at most ``PUBLISH_TIMEOUT`` for queued publishes, never longer on a stuck Redis."""
        reader, self._reader = self._reader, None
        try:
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        finally:
            self._drop_connection()
            await self._publisher.stop(PUBLISH_TIMEOUT)

    # ------------------------------------------------------------------ rooms

    def channel(self, room: str) -> bytes:
        return self._prefix + room.encode()

    async def subscribe(self, room: str) -> None:
        """Subscribe ``room``'s channel; wait briefly for Redis to confirm (never fails: a gap is reported instead)."""
        channel = self.channel(room)
        self._wanted[channel] = room
        connection = self._connection
        if not self.connected or connection is None or connection.broken():
            return  # the reader subscribes every wanted room when it (re)connects
        event = self._confirmed.setdefault(channel, asyncio.Event())
        connection.send(command(b"SUBSCRIBE", channel))
        try:
            await asyncio.wait_for(event.wait(), SUBSCRIBE_WAIT)
        except TimeoutError:
            # A gap, if any, is reported when the reader reconnects.
            logger.debug("Hub: SUBSCRIBE %r not confirmed within %s s", channel, SUBSCRIBE_WAIT)

    async def unsubscribe(self, room: str) -> None:
        channel = self.channel(room)
        self._wanted.pop(channel, None)
        self._confirmed.pop(channel, None)
        connection = self._connection
        if self.connected and connection is not None and not connection.broken():
            connection.send(command(b"UNSUBSCRIBE", channel))

    # ------------------------------------------------------------------ publishing

    async def publish(self, room: str, kind: str, payload: str | bytes) -> None:
        """Returns once Redis took the message; ``HubUnavailable`` when it did not (or may not have)."""
        body = payload.encode() if isinstance(payload, str) else payload
        channel = self.channel(room)
        tag = self._tags[kind]
        # _resp.command(b"PUBLISH", channel, tag + body), written out: one copy
        # of the body instead of two (0.36 against 1.08 µs for a 100-byte message).
        data = b"".join(
            (
                b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n" % (len(channel), channel, len(tag) + len(body)),
                tag,
                body,
                b"\r\n",
            )
        )
        await self._publisher.publish(data, room)

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
                self._drop_connection()
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _rooms(self) -> list[str]:
        return sorted(self._wanted.values())

    async def _connect(self) -> None:
        # The handshake's replies prove Redis answers (a frozen one accepts TCP but never replies).
        connection = self._connection = await self._open()
        # From here a join sends its own SUBSCRIBE (connected is True before
        # the next await): no room joined meanwhile is missed.
        channels = sorted(self._wanted)
        self._confirmed = {channel: asyncio.Event() for channel in channels}
        self.connected = True
        self._up.set()
        if channels:
            connection.send(command(b"SUBSCRIBE", *channels))

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def _read(self) -> None:
        connection = self._connection
        assert connection is not None
        waiting_pong = False
        while True:
            try:
                async with asyncio.timeout(PING_INTERVAL):
                    replies = await connection.read()
            except TimeoutError:
                if waiting_pong:
                    problem = f"no reply to PING within {PING_INTERVAL} s (half-open connection?)"
                    raise ConnectionError(problem) from None
                connection.send(_PING)
                waiting_pong = True
                continue
            waiting_pong = False
            for reply in replies:  # a protocol error (ProtocolError from read) drops the connection instead
                self._handle(reply)

    def _handle(self, reply: Any) -> None:
        if type(reply) is not list or not reply:
            if isinstance(reply, ReplyError):
                raise reply
            return  # PONG outside subscribed mode
        kind = reply[0]
        if kind == b"message" and len(reply) == 3:
            self._message(reply[1], reply[2])
        elif kind == b"subscribe" and len(reply) == 3:
            event = self._confirmed.get(reply[1])
            if event is not None:
                event.set()

    def _message(self, channel: Any, data: Any) -> None:
        room = self._wanted.get(channel)
        if room is None:
            return  # unsubscribed while it was in flight
        if type(data) is not bytes:
            self._malformed(channel, "not a bulk string")
            return
        if data[:ORIGIN_BYTES] == self.origin:
            return  # our own publish: delivered locally already
        tag = data[ORIGIN_BYTES : ORIGIN_BYTES + 1]
        if tag == b"t":
            try:
                text = data[ORIGIN_BYTES + 1 :].decode()
            except UnicodeDecodeError:
                self._malformed(channel, "text that is not UTF-8")
                return
            self._deliver(room, "t", text)
        elif tag == b"b":
            self._deliver(room, "b", data[ORIGIN_BYTES + 1 :])
        elif not tag:
            self._malformed(channel, f"{len(data)} bytes, shorter than a message's header")
        else:
            self._malformed(channel, f"unknown kind {tag!r}")

    def _deliver(self, room: str, kind: str, payload: str | bytes) -> None:
        try:
            self._hub.deliver_local(room, kind, payload)
        except Exception:  # a bug of the hub's: not a reason to drop the subscriber and lose the rest
            self._deliver_log.exception("Hub: delivering a message from Redis to room %r failed", room)

    def _malformed(self, channel: bytes, problem: str) -> None:
        # Someone else publishes on our prefix (or a bug does): skip it, keep the connection.
        self._hub.malformed += 1
        self._malformed_log.warning("Hub: skipped a malformed message on Redis channel %r: %s", channel, problem)
