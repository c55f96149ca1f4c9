"""``bocadillo_ws.Hub``: rooms with an encode-once broadcast, in memory or across processes through Redis.

The fast path of a publish is one encode, one event dict, and the backend's
``fan_out`` loop, which drives each member's server ``send`` once: no task
and no queue for a member whose send completes at once. A member whose send
suspends (its transport is paused) gets a bounded mailbox and one writer
task, until it has caught up; the others never wait for it.

Rooms are dicts (insertion-ordered sets) of members, and each member knows
its rooms, so joining and leaving cost the same in a room of ten and of a
hundred thousand. A publish walks a list snapshot of the room, made again
only after the room changed: members joining or leaving while a publish is
under way never disturb it.

One bad message or one bad member harms only itself: a text that cannot be
encoded as UTF-8 is a ``ValueError`` to its publisher before anyone gets it,
and a member leaves its rooms only when its connection is gone (an
``OSError``, a disconnect, a closed state), never for an error of one send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import types
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.websockets import WebSocketDisconnect

from . import _backend
from ._message_types import CONNECTED

if TYPE_CHECKING:
    from ._hub_redis import RedisLink

Message = dict[str, Any]
Overflow = Literal["close", "drop_oldest", "drop_newest"]
GapCallback = Callable[[list[str]], Any]

logger = logging.getLogger("bocadillo_ws.hub")

# Defaults (docs/hub.md says why): a member may lag 256 messages or 1 MiB,
# whichever comes first, then it is closed with 1013 "try again later".
MAX_QUEUE = 256
MAX_QUEUE_BYTES = 1 << 20
OVERFLOW_CLOSE_CODE = 1013
OVERFLOW_CLOSE_REASON = "slow consumer"
CLOSE_TIMEOUT = 5.0  # an overflow close that cannot be sent within this is given up
_OVERFLOW_POLICIES = ("close", "drop_oldest", "drop_newest")


class HubUnavailable(ConnectionError):
    """The hub's broker (Redis) did not take a publish; local members got it already."""


@dataclass(frozen=True)
class HubStats:
    """A snapshot of a hub's counters (``Hub.stats()``)."""

    members: int  # memberships: a socket in two rooms counts twice
    rooms: int  # rooms with at least one local member
    delivered: int  # sends that completed, one per member per message
    dropped: int  # messages dropped by the overflow policy (drop_oldest / drop_newest / close)
    closed_for_overflow: int  # members closed because their mailbox overflowed (on_overflow="close")
    lost: int  # members removed because their send failed (peer gone)
    queued: int  # messages waiting in mailboxes now
    writers: int  # members with a writer task now (their transport is slow)
    redis_reconnects: int  # successful reconnections of the Redis subscriber
    gaps: int  # times messages from other processes may have been missed (Redis outages)
    send_errors: int  # sends that failed while the member's connection stayed up (it stays in its rooms)
    malformed: int  # messages from Redis skipped because they could not be read (not a hub's)


@types.coroutine
def _resume(iterator: Any, yielded: Any) -> Generator[Any, Any, Any]:
    """Finish an ``await`` that ``fan_out`` started: yield what it yielded, forward sends and throws."""
    while True:
        try:
            value = yield yielded
        except GeneratorExit:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            raise
        except BaseException as exc:  # cancellation included: the suspended send sees it
            throw = getattr(iterator, "throw", None)
            if throw is None:
                raise
            try:
                yielded = throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = iterator.send(value)
            except StopIteration as stop:
                return stop.value


def utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8, or a ``ValueError`` saying why it cannot go on the wire (a lone surrogate)."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        problem = f"{what} cannot be sent: {exc.reason} at position {exc.start} (not encodable as UTF-8)"
        raise ValueError(problem) from None


class Membership:
    """What ``hub.join(room, ws)`` returns: ``ws`` is in ``room`` inside ``async with``.

    Entering adds the member (and, on a Redis hub, subscribes the room when
    it is the room's first member here); leaving removes it, however the
    block ends. One object per ``join()`` call; it holds nothing else, so a
    membership costs a few hundred bytes (docs/hub.md).
    """

    __slots__ = ("hub", "room", "ws")

    def __init__(self, hub: Hub, room: str, ws: Any) -> None:
        self.hub = hub
        self.room = room
        self.ws = ws

    async def __aenter__(self) -> Membership:
        await self.hub._enter(self.room, self.ws)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.hub._exit(self.room, self.ws)

    def __repr__(self) -> str:
        return f"<Membership of {self.ws!r} in {self.room!r}>"


class _Room:
    """A room's members (a dict: an insertion-ordered set) and the list a publish walks."""

    __slots__ = ("members", "snapshot")

    def __init__(self) -> None:
        self.members: dict[Any, None] = {}
        # The members as a list, for fan_out; None after any change. A publish
        # in progress keeps walking the list it started with.
        self.snapshot: list[Any] | None = None


class _Mailbox:
    """A slow member's pending events, bounded by the hub's limits, and its writer task."""

    __slots__ = ("events", "iterator", "nbytes", "task")

    def __init__(self, iterator: Any) -> None:
        self.events: deque[tuple[Message, int]] = deque()
        self.nbytes = 0
        self.task: asyncio.Task[None] | None = None
        # The suspended send the writer is finishing; None once it ended.
        self.iterator: Any = iterator

    def writer_done(self, task: asyncio.Task[None]) -> None:
        """A writer cancelled before it first ran never reached its send: cancel that send here."""
        iterator, self.iterator = self.iterator, None
        if iterator is None:
            return
        try:
            iterator.throw(asyncio.CancelledError())
        except BaseException:  # the send ended with the cancellation (or its own error)
            return
        iterator.close()  # it caught the cancellation and suspended again: end it for good


class Hub:
    """Rooms of WebSockets with an encode-once broadcast.

    ``Hub(url=None, *, json_codec="ujson", max_queue=256, max_queue_bytes=1 MiB,
    on_overflow="close", channel_prefix="bocadillo_ws:", on_gap=None, gap_notice=None)``.
    Without ``url`` the rooms are this process's; with a ``redis://``,
    ``rediss://`` or ``unix://`` URL they span every process using the same
    Redis and prefix (no client library needed; a URL the hub cannot use is a
    ``ValueError`` here). See docs/hub.md.
    """

    # The per-member loop: the live backend's. Tests put the other backend's
    # here in a subclass, so every hub test runs on both.
    _fan_out = staticmethod(_backend.fan_out)

    def __init__(
        self,
        url: str | None = None,
        *,
        json_codec: object = "ujson",
        max_queue: int = MAX_QUEUE,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
        on_overflow: Overflow = "close",
        channel_prefix: str = "bocadillo_ws:",
        on_gap: GapCallback | None = None,
        gap_notice: object = None,
    ) -> None:
        if on_overflow not in _OVERFLOW_POLICIES:
            choices = ", ".join(map(repr, _OVERFLOW_POLICIES))
            raise ValueError(f"on_overflow must be one of {choices}, not {on_overflow!r}")
        if max_queue < 1 or max_queue_bytes < 1:
            raise ValueError("max_queue and max_queue_bytes must be at least 1")
        self.url = url
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.on_overflow: Overflow = on_overflow
        self.on_gap = on_gap
        self._codec = _backend.make_json_codec(json_codec)
        self._gap_notice = None if gap_notice is None else self._codec.encode_text(gap_notice)
        if self._gap_notice is not None:
            utf8(self._gap_notice, "gap_notice")
        self._rooms: dict[str, _Room] = {}
        self._joined: dict[Any, dict[str, None]] = {}  # member -> its rooms here (ordered)
        self._erred: set[Any] = set()  # members whose failed send was logged (once each)
        self._busy: dict[Any, _Mailbox] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._redis: RedisLink | None = None
        if url is not None:
            from ._hub_redis import RedisLink

            self._redis = RedisLink(self, url, channel_prefix)
        self._delivered = self._dropped = self._closed = self._lost = self._send_errors = 0
        self.redis_reconnects = self.gaps = self.malformed = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Hub:
        if self._redis is not None:
            await self._redis.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the Redis link and every writer task; rooms are emptied."""
        try:
            if self._redis is not None:
                await self._redis.stop()
        finally:
            self._rooms = {}
            self._joined = {}
            self._erred.clear()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            self._busy.clear()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """``Starlette(lifespan=hub.lifespan)`` / ``FastAPI(lifespan=hub.lifespan)``: the hub runs with the app."""
        async with self:
            yield

    # ------------------------------------------------------------------ membership

    def join(self, room: str, ws: Any) -> Membership:
        """``async with hub.join(room, ws):`` ``ws`` receives everything published to ``room`` until the block ends.

        Raises ``TypeError`` for anything but a ``bocadillo_ws.WebSocket`` and
        ``RuntimeError`` when ``ws`` is in ``room`` already (on entering).
        """
        return Membership(self, room, ws)

    async def _enter(self, name: str, ws: Any) -> None:
        if not isinstance(ws, _backend.WebSocketCore) and type(self)._fan_out is _backend.fan_out:
            raise TypeError(f"Hub members must be bocadillo_ws WebSockets, got {type(ws).__name__}")
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = _Room()
        elif ws in room.members:
            raise RuntimeError(f"this WebSocket is already in room {name!r}")
        room.members[ws] = None
        room.snapshot = None
        rooms = self._joined.get(ws)
        if rooms is None:
            rooms = self._joined[ws] = {}
        rooms[name] = None
        if len(room.members) == 1 and self._redis is not None:
            try:
                await self._redis.subscribe(name)
            except BaseException:  # cancelled while subscribing: not a member after all
                await self._exit(name, ws)
                raise

    async def _exit(self, name: str, ws: Any) -> None:
        self._leave(name, ws)
        if self._redis is not None and name not in self._rooms:
            await self._redis.unsubscribe(name)

    def _leave(self, name: str, ws: Any) -> None:
        room = self._rooms.get(name)
        if room is None or ws not in room.members:
            return  # already removed (its connection is gone, or it overflowed)
        del room.members[ws]
        room.snapshot = None
        if not room.members:
            del self._rooms[name]
        rooms = self._joined[ws]
        del rooms[name]
        if not rooms:  # in no room any more: nothing of it stays here
            del self._joined[ws]
            self._erred.discard(ws)
            self._discard_mailbox(ws)

    def _leave_all(self, ws: Any) -> None:
        for name in list(self._joined.get(ws, ())):
            self._leave(name, ws)
        self._discard_mailbox(ws)

    def _discard_mailbox(self, ws: Any) -> None:
        box = self._busy.pop(ws, None)
        if box is not None and box.task is not None:
            box.task.cancel()

    def rooms(self) -> list[str]:
        """The rooms with at least one member in this process."""
        return list(self._rooms)

    def members(self, room: str) -> list[Any]:
        """This process's members of ``room``, in the order they joined."""
        found = self._rooms.get(room)
        return [] if found is None else list(found.members)

    # ------------------------------------------------------------------ publishing

    async def publish(self, room: str, data: Any) -> int:
        """Send ``data`` as JSON (encoded once) to every member of ``room``, in every process.

        Returns how many local members got it at once. Data the codec cannot
        encode (``TypeError``, ``ValueError``), or text that cannot be UTF-8
        (a lone surrogate: ``ValueError``), reaches no one. With Redis, raises
        ``HubUnavailable`` (after local delivery) when Redis cannot take it.
        """
        return await self._publish(room, "t", self._codec.encode_text(data))

    async def publish_text(self, room: str, text: str) -> int:
        """Send a prebuilt text frame to every member of ``room`` (``ValueError`` if it is not valid UTF-8)."""
        if type(text) is not str:
            raise TypeError(f"publish_text() expects str, got {type(text).__name__}")
        return await self._publish(room, "t", text)

    async def publish_bytes(self, room: str, data: bytes) -> int:
        """Send a prebuilt binary frame to every member of ``room``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"publish_bytes() expects bytes, got {type(data).__name__}")
        return await self._publish(room, "b", bytes(data))

    async def _publish(self, room: str, kind: str, payload: str | bytes) -> int:
        # Checked before anyone gets it: a frame every server can send, or an
        # error to the publisher alone. The broker needs the UTF-8 anyway.
        body = payload
        if isinstance(payload, str) and (self._redis is not None or not payload.isascii()):
            body = utf8(payload, "the message")
        delivered = self.deliver_local(room, kind, payload)
        if self._redis is not None:
            await self._redis.publish(room, kind, body)
        return delivered

    def deliver_local(self, room: str, kind: str, payload: str | bytes) -> int:
        """Hand a frame (``kind`` "t" text, "b" bytes) to this process's members of ``room``, without waiting."""
        found = self._rooms.get(room)
        if found is None:
            return 0
        members = found.snapshot
        if members is None:
            members = found.snapshot = list(found.members)
        # One event for every member (servers read it, never keep or change it).
        event = {"type": "websocket.send", "text" if kind == "t" else "bytes": payload}
        suspended: list[tuple[Any, Any, Any]] = []
        queued: list[Any] = []
        lost: list[tuple[Any, BaseException]] = []
        delivered = type(self)._fan_out(members, event, self._busy, suspended, queued, lost)
        self._delivered += delivered
        if suspended or queued or lost:
            self._slow_path(event, len(payload), suspended, queued, lost)
        return delivered

    def _slow_path(
        self,
        event: Message,
        size: int,
        suspended: list[tuple[Any, Any, Any]],
        queued: list[Any],
        lost: list[tuple[Any, BaseException]],
    ) -> None:
        for ws, exc in lost:
            self._send_failed(ws, exc)
        for ws in queued:
            self._enqueue(ws, event, size)
        for ws, iterator, yielded in suspended:
            box = _Mailbox(iterator)
            self._busy[ws] = box
            box.task = self._spawn(self._write(ws, box, yielded))
            box.task.add_done_callback(box.writer_done)

    def _send_failed(self, ws: Any, exc: BaseException) -> bool:
        """A member's send raised ``exc``: remove it if its connection is gone; whether it was removed."""
        gone = isinstance(exc, (OSError, WebSocketDisconnect))  # fan_out marked an OSError's member closed
        if gone or ws._app_state != CONNECTED or ws._client_state != CONNECTED:
            self._lost += 1
            logger.debug("hub member removed after a failed send: %r", exc)
            self._leave_all(ws)
            return True
        # One message the server refused (a bug or a limit of its own): this
        # member misses it, and stays; everyone else got it.
        self._send_errors += 1
        if ws not in self._erred:
            self._erred.add(ws)
            logger.warning(
                "Hub: a send to %r failed (%s: %s); it stays in its rooms (logged once per member)",
                ws,
                type(exc).__name__,
                exc,
            )
        return False

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _enqueue(self, ws: Any, event: Message, size: int) -> None:
        box = self._busy[ws]
        events = box.events
        if len(events) < self.max_queue and box.nbytes + size <= self.max_queue_bytes:
            events.append((event, size))
            box.nbytes += size
            return
        policy = self.on_overflow
        if policy == "drop_newest" or size > self.max_queue_bytes:
            self._dropped += 1
        elif policy == "drop_oldest":
            while events and (len(events) >= self.max_queue or box.nbytes + size > self.max_queue_bytes):
                box.nbytes -= events.popleft()[1]
                self._dropped += 1
            events.append((event, size))
            box.nbytes += size
        else:
            self._overflow_close(ws, box)

    def _overflow_close(self, ws: Any, box: _Mailbox) -> None:
        self._closed += 1
        # What it will never get: this message, its mailbox, and the send in flight.
        self._dropped += 1 + len(box.events) + (box.iterator is not None)
        box.events.clear()
        box.nbytes = 0
        writer = box.task
        self._leave_all(ws)  # cancels the writer
        self._spawn(self._close_slow(ws, writer))

    async def _close_slow(self, ws: Any, writer: asyncio.Task[None] | None) -> None:
        if writer is not None:
            await asyncio.gather(writer, return_exceptions=True)
        if ws._app_state != 1:
            return
        try:
            await asyncio.wait_for(ws.close(OVERFLOW_CLOSE_CODE, OVERFLOW_CLOSE_REASON), CLOSE_TIMEOUT)
        except Exception as exc:  # the peer is gone or stuck: it is out of the room all the same
            logger.debug("hub could not close a slow member: %r", exc)

    async def _write(self, ws: Any, box: _Mailbox, yielded: Any) -> None:
        """The writer of a slow member: finish the suspended send, then its mailbox, in order."""
        fan_out = type(self)._fan_out
        one = [ws]
        try:
            while True:
                try:
                    await _resume(box.iterator, yielded)
                except Exception as exc:
                    if isinstance(exc, OSError):
                        ws._lost()  # as a failed send does in WebSocket
                    if self._send_failed(ws, exc):
                        return
                else:
                    self._delivered += 1
                while True:
                    if not box.events:
                        return  # caught up: back to the fast path
                    event, size = box.events.popleft()
                    box.nbytes -= size
                    suspended: list[tuple[Any, Any, Any]] = []
                    lost: list[tuple[Any, BaseException]] = []
                    self._delivered += fan_out(one, event, None, suspended, [], lost)
                    if lost and self._send_failed(ws, lost[0][1]):
                        return
                    if suspended:
                        _, box.iterator, yielded = suspended[0]
                        break
                    if ws._app_state != 1:
                        return
        finally:
            box.iterator = None  # finished, failed, or saw the cancellation through _resume
            if self._busy.get(ws) is box:
                del self._busy[ws]

    # ------------------------------------------------------------------ gaps and stats

    def report_gap(self, rooms: list[str]) -> None:
        """Messages from other processes to ``rooms`` may have been lost: tell the hook and the members."""
        self.gaps += 1
        if self._gap_notice is not None:
            for room in rooms:
                self.deliver_local(room, "t", self._gap_notice)
        if self.on_gap is not None:
            try:
                result = self.on_gap(rooms)
                if asyncio.iscoroutine(result):
                    self._spawn(result)
            except Exception:
                logger.exception("Hub on_gap callback failed")

    def stats(self) -> HubStats:
        """Counters since the hub was made, and what is pending now."""
        return HubStats(
            members=sum(len(room.members) for room in self._rooms.values()),
            rooms=len(self._rooms),
            delivered=self._delivered,
            dropped=self._dropped,
            closed_for_overflow=self._closed,
            lost=self._lost,
            queued=sum(len(box.events) for box in self._busy.values()),
            writers=sum(1 for box in self._busy.values() if box.task is not None and not box.task.done()),
            redis_reconnects=self.redis_reconnects,
            gaps=self.gaps,
            send_errors=self._send_errors,
            malformed=self.malformed,
        )
