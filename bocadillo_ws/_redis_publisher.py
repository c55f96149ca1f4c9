"""The Hub's publisher: one writer task sends whatever is queued to Redis in one round trip.

``publish()`` queues a ready ``PUBLISH`` command and waits for its outcome.
The writer takes everything queued (up to ``MAX_BATCH_COMMANDS`` commands or
``MAX_BATCH_BYTES``), writes it at once, and reads the replies: a burst of
publishes costs a few round trips, not one each, and nothing is cancelled
half-written. The timeout applies per batch: a batch that Redis does not
answer in time means the connection is broken. It is dropped, and that
batch's publishers get ``HubUnavailable`` saying that Redis may or may not
have the message (it is never retried, so never duplicated); those still
queued get one fresh connection attempt. Publishes leave in call order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from ._hub import HubUnavailable
from ._redis_connection import RedisConnection
from ._resp import ProtocolError, ReplyError

logger = logging.getLogger("bocadillo_ws.hub")

# One round trip stays short (well under the timeout on a healthy Redis) and
# one reply buffer small; a single larger message still goes, alone.
MAX_BATCH_COMMANDS = 512
MAX_BATCH_BYTES = 1 << 20
# Between two failed connection attempts: a stream of publishes to a Redis
# that is down makes at most 20 attempts a second, not one per batch.
RECONNECT_PAUSE = 0.05
NOT_RUNNING = "the hub is not running: use `async with hub` or lifespan=hub.lifespan"

# (the PUBLISH command, its publisher's future, the room for messages)
_Pending = tuple[bytes, "asyncio.Future[None]", str]


class BatchPublisher:
    """Publishes through one connection, in batches, with a writer task of its own."""

    def __init__(self, connect: Callable[[], Awaitable[RedisConnection]], timeout: float) -> None:
        self._connect = connect
        self._timeout = timeout
        self._queue: deque[_Pending] = deque()
        self._in_flight: list[_Pending] = []
        self._connection: RedisConnection | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._down = False  # the last connection attempt failed (logged once per outage)
        self._next_attempt = 0.0  # loop time before which no new connection attempt is made

    def start(self, connection: RedisConnection | None) -> None:
        """Run the writer; ``connection`` is a connection to use first (None: connect on the first publish)."""
        self._connection = connection
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, flush_timeout: float) -> None:
        """Refuse new publishes, give the queued ones up to ``flush_timeout``, then fail the rest."""
        task = self._task
        if task is None:
            return
        self._closing = True
        self._wake()
        try:
            await asyncio.wait({task}, timeout=flush_timeout)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._task = None

    async def publish(self, data: bytes, room: str) -> None:
        """Returns once Redis took ``data`` (a PUBLISH command); ``HubUnavailable`` otherwise."""
        task = self._task
        if task is None or self._closing or task.done():
            raise HubUnavailable(NOT_RUNNING)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((data, future, room))
        self._wake()
        await future  # a cancelled publisher cancels only its own future

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    # ------------------------------------------------------------------ the writer

    async def _run(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not queue:
                    if self._closing:
                        return
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    continue
                try:
                    await self._send_next()
                except Exception:  # a bug here must not leave publishers waiting forever
                    logger.exception("Hub: the Redis publisher failed; reconnecting")
                    self._drop()
                    _fail_unconfirmed(self._in_flight, "the publisher failed")
                    self._in_flight = []
        finally:
            self._drop()
            _fail_unconfirmed(self._in_flight, "the hub closed")
            self._in_flight = []
            _fail_unsent(queue, "the hub closed")
            queue.clear()

    async def _send_next(self) -> None:
        connection = self._connection
        if connection is None or connection.broken():
            self._drop()
            connection = await self._reconnect()
            if connection is None:
                return
        batch = self._take_batch()
        if not batch:
            return
        self._in_flight = batch  # failed by _run if the writer is cancelled meanwhile
        try:
            async with asyncio.timeout(self._timeout):
                connection.send(b"".join([pending[0] for pending in batch]))
                await connection.drain()
                replies = await connection.replies(len(batch))
        except (TimeoutError, OSError, ProtocolError) as exc:
            self._in_flight = []
            why = f"no reply within {self._timeout} s" if isinstance(exc, TimeoutError) else repr(exc)
            logger.warning("Hub: Redis publisher connection broken (%s); reconnecting", why)
            self._drop()
            _fail_unconfirmed(batch, why)
            return
        self._in_flight = []
        for (_, future, room), reply in zip(batch, replies):
            if future.done():
                continue  # its publisher was cancelled while the batch was in flight
            if type(reply) is ReplyError:
                problem = f"Redis refused the message for room {room!r} (delivered locally only): {reply}"
                future.set_exception(HubUnavailable(problem))
            else:
                future.set_result(None)

    def _take_batch(self) -> list[_Pending]:
        queue = self._queue
        batch: list[_Pending] = []
        size = 0
        while queue and len(batch) < MAX_BATCH_COMMANDS and size < MAX_BATCH_BYTES:
            pending = queue.popleft()
            if pending[1].done():
                continue  # its publisher was cancelled before it was sent: never sent
            batch.append(pending)
            size += len(pending[0])
        return batch

    async def _reconnect(self) -> RedisConnection | None:
        """A connection for what is queued, or None when that failed (and the queued publishes with it)."""
        loop = asyncio.get_running_loop()
        pause = self._next_attempt - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
        try:
            connection = await self._connect()
        except Exception as exc:  # OSError, a timeout, a refusal: all "Redis does not have it"
            if not self._down:
                logger.warning("Hub: Redis publisher cannot connect (%r); publishes fail until it can", exc)
            self._down = True
            self._next_attempt = loop.time() + RECONNECT_PAUSE
            queued = list(self._queue)
            self._queue.clear()
            _fail_unsent(queued, repr(exc))
            return None
        if self._down:
            logger.info("Hub: Redis publisher connected again")
        self._down = False
        self._connection = connection
        return connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _fail_unsent(pendings: Iterable[_Pending], why: str) -> None:
    """Never written to Redis: no one else has these messages."""
    for _, future, room in pendings:
        if not future.done():
            problem = f"Redis did not take the message for room {room!r} (delivered locally only): {why}"
            future.set_exception(HubUnavailable(problem))


def _fail_unconfirmed(pendings: Iterable[_Pending], why: str) -> None:
    """Written, but not confirmed: Redis may or may not have published them."""
    for _, future, room in pendings:
        if not future.done():
            problem = (
                f"Redis did not confirm the message for room {room!r} (delivered locally only; other"
                f" processes may or may not get it, and it is not retried): {why}"
            )
            future.set_exception(HubUnavailable(problem))
