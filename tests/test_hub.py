"""bocadillo_ws.Hub in memory: encode once, fan-out, slow members, overflow, leaving.

Every test runs on both backends: the ``hub_class`` fixture is ``Hub`` with
that backend's ``fan_out`` (the hub calls ``type(self)._fan_out``), and the
members are that backend's ``WebSocket``. The server side of each member is
``Peer``, an in-memory ASGI server whose ``send`` can be held (a paused
transport) or made to fail (a peer gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
import tracemalloc
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketState

import bocadillo_ws
from asgi_helpers import SCOPE
from bocadillo_ws import Hub, HubStats
from hub_helpers import backend_hub, member, settle

pytestmark = pytest.mark.anyio


@pytest.fixture
def hub_class(impl: Any) -> type[Hub]:
    return backend_hub(impl)



async def test_every_member_gets_every_message_once_in_order(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    async with hub_class() as hub, contextlib.AsyncExitStack() as stack:
        lobby = [await member(WebSocket) for _ in range(1000)]
        other = await member(WebSocket)
        for ws, _ in lobby:
            await stack.enter_async_context(hub.join("lobby", ws))
        await stack.enter_async_context(hub.join("other", other[0]))
        for seq in range(20):
            assert await hub.publish("lobby", {"seq": seq, "text": "hi"}) == 1000
        for _, peer in lobby:
            assert peer.texts == [{"seq": seq, "text": "hi"} for seq in range(20)]
        assert other[1].sent == []
        stats = hub.stats()
        assert (stats.members, stats.rooms, stats.delivered, stats.writers, stats.queued) == (1001, 2, 20_000, 0, 0)


async def test_one_encode_and_one_event_per_publish(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    class Counting:
        calls = 0

        def dumps(self, value: Any) -> str:
            Counting.calls += 1
            return json.dumps(value, separators=(",", ":"))

        def loads(self, text: Any) -> Any:
            return json.loads(text)

    hub = hub_class(json_codec=Counting())
    members = [await member(WebSocket) for _ in range(50)]
    async with contextlib.AsyncExitStack() as stack:
        for ws, _ in members:
            await stack.enter_async_context(hub.join("r", ws))
        await hub.publish("r", {"a": [1, 2]})
    assert Counting.calls == 1
    events = [peer.sent[0] for _, peer in members]
    assert all(event is events[0] for event in events)
    assert events[0] == {"type": "websocket.send", "text": '{"a":[1,2]}'}


async def test_publish_text_and_bytes(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    (ws, peer) = await member(WebSocket)
    async with hub.join("r", ws):
        assert await hub.publish_text("r", "plain") == 1
        assert await hub.publish_bytes("r", b"\x00\x01") == 1
        assert await hub.publish_text("empty-room", "x") == 0
        with pytest.raises(TypeError, match="expects str"):
            await hub.publish_text("r", b"x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expects bytes"):
            await hub.publish_bytes("r", "x")  # type: ignore[arg-type]
    assert peer.sent == [{"type": "websocket.send", "text": "plain"}, {"type": "websocket.send", "bytes": b"\x00\x01"}]


async def test_orjson_and_stdlib_codecs_encode_the_same_frame(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    for codec in ("ujson", "orjson", "json"):
        hub = hub_class(json_codec=codec)
        ws, peer = await member(WebSocket)
        async with hub.join("r", ws):
            await hub.publish("r", {"k": "é", "n": [1, None]})
        assert peer.texts == [{"k": "é", "n": [1, None]}], codec


async def test_a_stalled_member_does_not_hold_up_the_room_and_catches_up_in_order(
    hub_class: type[Hub], WebSocket: type[Any]
) -> None:
    async with hub_class() as hub, contextlib.AsyncExitStack() as stack:
        members = [await member(WebSocket) for _ in range(10)]
        for ws, _ in members:
            await stack.enter_async_context(hub.join("r", ws))
        slow = members[3][1]
        slow.hold()
        for seq in range(5):
            # Publish returns with every other member served, before any task runs.
            assert await hub.publish("r", seq) == 9
            assert all(peer.texts == list(range(seq + 1)) for _, peer in members if peer is not slow)
        stats = hub.stats()
        assert (stats.writers, stats.queued, stats.delivered) == (1, 4, 45)
        assert slow.texts == []
        slow.release()
        await settle()
        assert slow.texts == [0, 1, 2, 3, 4]
        await hub.publish("r", 5)  # back on the fast path: no writer, no mailbox
        assert slow.texts == [0, 1, 2, 3, 4, 5]
        stats = hub.stats()
        assert (stats.writers, stats.queued, stats.delivered, stats.dropped) == (0, 0, 60, 0)
        assert hub._busy == {}


async def test_a_member_that_stalls_again_while_catching_up(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    ws, peer = await member(WebSocket)
    async with hub.join("r", ws):
        peer.hold()
        for seq in range(3):
            await hub.publish("r", seq)
        gate = peer.gate
        assert gate is not None
        # Let one frame through, then hold again: the writer suspends mid-mailbox.
        peer.on_send = lambda event: (peer.hold(), setattr(peer, "on_send", None))
        gate.set()
        await settle()
        assert peer.texts == [0]
        await hub.publish("r", 3)
        peer.release()
        await settle()
        assert peer.texts == [0, 1, 2, 3]
        await settle()
        assert hub.stats().writers == 0


@pytest.mark.parametrize("limit", ["messages", "bytes"])
async def test_overflow_close(hub_class: type[Hub], WebSocket: type[Any], limit: str) -> None:
    options = {"max_queue": 3} if limit == "messages" else {"max_queue_bytes": 3}
    async with hub_class(**options) as hub:
        (fast, fast_peer), (slow, slow_peer) = await member(WebSocket), await member(WebSocket)
        async with hub.join("r", fast), hub.join("r", slow):
            slow_peer.hold()
            for seq in range(5):  # 1 suspended send + 3 queued (1 byte each), the 5th overflows
                await hub.publish("r", seq)
            await settle()
            # Closed with 1013 after its writer was cancelled; out of the room, the others unaffected.
            assert slow_peer.cancelled == 1
            assert slow_peer.sent == [{"type": "websocket.close", "code": 1013, "reason": "slow consumer"}]
            assert slow.application_state == WebSocketState.DISCONNECTED
            assert hub.members("r") == [fast]
            await hub.publish("r", 5)
            assert fast_peer.texts == [0, 1, 2, 3, 4, 5]
            stats = hub.stats()
            assert (stats.closed_for_overflow, stats.dropped, stats.writers, stats.queued, stats.members) == (1, 5, 0, 0, 1)


@pytest.mark.parametrize(("policy", "expected", "dropped"), [("drop_oldest", [0, 7, 8, 9], 6), ("drop_newest", [0, 1, 2, 3], 6)])
async def test_overflow_drop_policies(
    hub_class: type[Hub], WebSocket: type[Any], policy: Any, expected: list[int], dropped: int
) -> None:
    async with hub_class(max_queue=3, on_overflow=policy) as hub:
        ws, peer = await member(WebSocket)
        async with hub.join("r", ws):
            peer.hold()
            for seq in range(10):
                await hub.publish("r", seq)
            assert hub.stats().queued == 3
            peer.release()
            await settle()
            assert peer.texts == expected
            stats = hub.stats()
            assert (stats.dropped, stats.closed_for_overflow, stats.writers) == (dropped, 0, 0)


async def test_byte_limit_with_drop_oldest(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    async with hub_class(max_queue_bytes=10, on_overflow="drop_oldest") as hub:
        ws, peer = await member(WebSocket)
        async with hub.join("r", ws):
            peer.hold()
            await hub.publish_text("r", "first")
            for text in ("aaaa", "bbbb", "cccc"):  # 4 bytes each: only two fit in 10
                await hub.publish_text("r", text)
            await hub.publish_text("r", "x" * 11)  # larger than the whole limit: dropped
            peer.release()
            await settle()
            assert peer.frames == ["first", "bbbb", "cccc"]
            assert hub.stats().dropped == 2


async def test_a_member_whose_peer_is_gone_leaves(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    members = [await member(WebSocket) for _ in range(3)]
    async with hub.join("r", members[0][0]), hub.join("r", members[1][0]), hub.join("r", members[2][0]):
        members[1][1].fail = ConnectionResetError("gone")
        assert await hub.publish("r", 1) == 2
        assert members[1][0].application_state == WebSocketState.DISCONNECTED
        assert hub.members("r") == [members[0][0], members[2][0]]
        await hub.publish("r", 2)
        assert [peer.texts for _, peer in members] == [[1, 2], [], [1, 2]]
        assert hub.stats().lost == 1


# --------------------------------------------------------------------------- one bad message, one bad member


@pytest.mark.parametrize("publish", ["json", "text"])
async def test_an_unencodable_message_reaches_no_one(hub_class: type[Hub], WebSocket: type[Any], publish: str) -> None:
    """Issue 18: a lone surrogate made every member's send fail, and the hub emptied the room."""
    hub = hub_class()
    members = [await member(WebSocket) for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for ws, _ in members:
            await stack.enter_async_context(hub.join("r", ws))
        with pytest.raises(ValueError, match=r"the message cannot be sent: surrogates not allowed at position"):
            if publish == "json":
                await hub.publish("r", {"text": "\ud800"})
            else:
                await hub.publish_text("r", '{"text":"\udfff"}')
        assert [peer.frames for _, peer in members] == [[], [], []]
        assert hub.members("r") == [ws for ws, _ in members]
        assert await hub.publish("r", {"text": "next"}) == 3
        assert [peer.texts for _, peer in members] == [[{"text": "next"}]] * 3
        stats = hub.stats()
        assert (stats.lost, stats.send_errors, stats.delivered) == (0, 0, 3)


def test_an_unencodable_gap_notice_is_refused() -> None:
    with pytest.raises(ValueError, match="gap_notice cannot be sent"):
        Hub(gap_notice={"type": "gap", "text": "\udc80"})


async def test_a_member_stays_after_a_send_error_that_is_not_a_lost_connection(
    hub_class: type[Hub], WebSocket: type[Any], caplog: pytest.LogCaptureFixture
) -> None:
    hub = hub_class()
    members = [await member(WebSocket) for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for ws, _ in members:
            await stack.enter_async_context(hub.join("r", ws))
        members[1][1].fail = RuntimeError("the server refused this frame")
        with caplog.at_level("WARNING", logger="bocadillo_ws.hub"):
            assert await hub.publish("r", 1) == 2
            assert await hub.publish("r", 2) == 2
        assert [r.getMessage() for r in caplog.records if "the server refused" in r.getMessage()] != []
        assert len([r for r in caplog.records if r.name == "bocadillo_ws.hub"]) == 1  # once per member
        members[1][1].fail = None
        assert await hub.publish("r", 3) == 3
        assert [peer.texts for _, peer in members] == [[1, 2, 3], [3], [1, 2, 3]]
        assert hub.members("r") == [ws for ws, _ in members]
        assert members[1][0].application_state == WebSocketState.CONNECTED
        stats = hub.stats()
        assert (stats.lost, stats.send_errors, stats.members) == (0, 2, 3)


async def test_a_member_whose_send_says_disconnected_leaves(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    (a, a_peer), (b, b_peer) = await member(WebSocket), await member(WebSocket)
    async with hub.join("r", a), hub.join("r", b), hub.join("s", b):
        b_peer.fail = bocadillo_ws.WebSocketDisconnect(1006)
        assert await hub.publish("r", 1) == 1
        assert hub.members("r") == [a] and hub.members("s") == []
        assert (hub.stats().lost, hub.stats().send_errors) == (1, 0)
    assert a_peer.texts == [1]


async def test_a_slow_member_stays_after_a_send_error(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    ws, peer = await member(WebSocket)
    async with hub.join("r", ws):
        peer.hold()
        for n in (1, 2, 3):
            await hub.publish("r", n)  # 1 suspends, 2 and 3 wait in its mailbox

        def refuse_two(event: dict[str, Any]) -> None:
            if event.get("text") == "2":
                raise RuntimeError("refused")

        peer.on_send = refuse_two
        peer.release()
        await settle()
        assert peer.texts == [1, 3]
        assert hub.members("r") == [ws]
        stats = hub.stats()
        assert (stats.lost, stats.send_errors, stats.delivered, stats.writers) == (0, 1, 2, 0)


async def test_join_returns_the_membership(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    ws, _ = await member(WebSocket)
    membership = hub.join("r", ws)
    assert hub.members("r") == []  # nothing happens before entering
    async with membership as entered:
        assert entered is membership
        assert (entered.room, entered.ws, entered.hub) == ("r", ws, hub)
        assert hub.members("r") == [ws]
    assert hub.members("r") == [] and hub.rooms() == []


# --------------------------------------------------------------------------- rooms of any size


def drive(coroutine: Any) -> None:
    """Run a coroutine that never suspends (the in-memory hub's join and leave)."""
    with pytest.raises(StopIteration):
        coroutine.send(None)


async def _never_called(*args: Any) -> Any:
    raise AssertionError("not used")


def test_joining_and_leaving_cost_the_same_in_a_small_and_a_large_room(
    hub_class: type[Hub], WebSocket: type[Any]
) -> None:
    """Issue 18: joins and leaves copied and scanned the room (28 s for 30,000 members).

    The best of several batches of 500 joins + leaves in a room of 200 and
    in one of 20,000, the collector paused: O(1) gives a ratio near 1, the
    old copy-and-scan about 100. The bound, 10, leaves room for any noise.
    """

    def sockets(count: int) -> list[Any]:
        return [WebSocket(dict(SCOPE), _never_called, _never_called) for _ in range(count)]

    def best_batch_seconds(size: int) -> float:
        hub = hub_class()
        room = [hub.join("room", ws) for ws in sockets(size)]  # kept: a membership ends when its object goes
        for membership in room:
            drive(membership.__aenter__())
        extra = sockets(500)
        best = float("inf")
        for _ in range(7):
            start = time.perf_counter()
            memberships = [hub.join("room", ws) for ws in extra]
            for membership in memberships:
                drive(membership.__aenter__())
            for membership in memberships:
                drive(membership.__aexit__(None, None, None))
            best = min(best, time.perf_counter() - start)
        assert hub.stats().members == size
        return best

    gc.collect()
    gc.disable()
    try:
        small, large = best_batch_seconds(200), best_batch_seconds(20_000)
    finally:
        gc.enable()
    assert large / small < 10, f"500 joins + leaves: {small * 1e3:.2f} ms in a room of 200, {large * 1e3:.2f} ms in 20,000"


def test_a_membership_costs_well_under_a_kilobyte(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    """Issue 18: ~5 KB each (every join's suspended frame kept a copy of the room's list)."""
    members = [WebSocket(dict(SCOPE), _never_called, _never_called) for _ in range(20_000)]
    hub = hub_class()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = []
        for i, ws in enumerate(members):
            membership = hub.join(f"room-{i % 20}", ws)  # 1,000 members a room
            drive(membership.__aenter__())
            kept.append(membership)  # alive, as inside `async with`
        per_membership = (tracemalloc.get_traced_memory()[0] - before) / len(members)
    finally:
        tracemalloc.stop()
    assert hub.stats().members == 20_000
    assert per_membership <= 1024, f"{per_membership:.0f} bytes per membership"


async def test_a_slow_member_whose_peer_goes_away_leaves(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    ws, peer = await member(WebSocket)
    async with hub.join("r", ws):
        peer.hold()
        await hub.publish("r", 1)
        await hub.publish("r", 2)
        peer.fail = BrokenPipeError("gone")
        peer.release()  # the suspended send finishes; the queued one fails
        await settle()
        assert peer.texts == [1]
        assert ws.application_state == WebSocketState.DISCONNECTED
        assert hub.members("r") == []
        assert (hub.stats().lost, hub.stats().writers) == (1, 0)


async def test_members_that_are_not_connected_are_skipped(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    (a, a_peer), (b, b_peer) = await member(WebSocket), await member(WebSocket)
    async with hub.join("r", a), hub.join("r", b):
        await b.close()
        assert await hub.publish("r", 1) == 1
    assert a_peer.texts == [1]
    assert b_peer.frames == []


async def test_join_and_leave_during_a_publish(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    members = [await member(WebSocket) for _ in range(4)]
    newcomer, newcomer_peer = await member(WebSocket)
    joining = hub.join("r", newcomer)
    leaving = hub.join("r", members[2][0])

    def drive(coroutine: Any) -> None:  # the in-memory hub's join and leave never suspend
        with pytest.raises(StopIteration):
            coroutine.send(None)

    def during_publish(event: dict[str, Any]) -> None:
        members[1][1].on_send = None
        drive(joining.__aenter__())
        drive(leaving.__aexit__(None, None, None))

    async with hub.join("r", members[0][0]), hub.join("r", members[1][0]):
        drive(leaving.__aenter__())
        async with hub.join("r", members[3][0]):
            members[1][1].on_send = during_publish
            # This publish started with four members: all four get it, the newcomer does not.
            assert await hub.publish("r", 1) == 4
            assert await hub.publish("r", 2) == 4
        drive(joining.__aexit__(None, None, None))
    assert [peer.texts for _, peer in members] == [[1, 2], [1, 2], [1], [1, 2]]
    assert newcomer_peer.texts == [2]
    assert hub.stats().members == 0 and hub.rooms() == []


async def test_members_leave_on_exception_and_cancellation(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    (a, _), (b, b_peer) = await member(WebSocket), await member(WebSocket)
    with pytest.raises(ZeroDivisionError):
        async with hub.join("r", a):
            1 / 0  # noqa: B018
    assert hub.members("r") == []

    entered = asyncio.Event()

    async def stay() -> None:
        async with hub.join("r", b):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(stay())
    await entered.wait()
    b_peer.hold()
    await hub.publish("r", 1)  # b is now mid-send, with a writer
    assert hub.stats().writers == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    assert b_peer.cancelled == 1  # the writer's suspended send saw the cancellation
    assert hub.stats() == HubStats(**dict.fromkeys(HubStats.__dataclass_fields__, 0))
    assert hub._busy == {} and hub._tasks == set()


async def test_closing_the_hub_cancels_writers(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    hub = hub_class()
    ws, peer = await member(WebSocket)
    async with hub:
        membership = hub.join("r", ws)
        await membership.__aenter__()
        peer.hold()
        await hub.publish("r", 1)
        assert len(hub._tasks) == 1
    assert peer.cancelled == 1
    assert hub._tasks == set() and hub._busy == {} and hub.rooms() == []
    await membership.__aexit__(None, None, None)


async def test_joining_twice_and_foreign_objects_are_refused(WebSocket: type[Any]) -> None:
    hub = Hub()
    ws, _ = await member(WebSocket)
    if isinstance(ws, bocadillo_ws._backend.WebSocketCore):
        async with hub.join("r", ws):
            with pytest.raises(RuntimeError, match="already in room"):
                async with hub.join("r", ws):
                    pass
    with pytest.raises(TypeError, match="must be bocadillo_ws WebSockets"):
        async with hub.join("r", object()):
            pass


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="on_overflow"):
        Hub(on_overflow="wait")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        Hub(max_queue=0)


@pytest.mark.c_extension
def test_fan_out_twins_refuse_the_same_way(both_impls: list[Any]) -> None:
    errors = []
    for impl in both_impls:
        messages = []
        for args in [((), {}, None, [], [], []), ([], [], None, [], [], []), ([object()], {}, None, [], [], [])]:
            with pytest.raises(TypeError) as info:
                impl.module.fan_out(*args)
            messages.append(str(info.value))
        errors.append(messages)
    assert errors[0] == errors[1]
    assert errors[0][2] == "fan_out() members must be bocadillo_ws WebSockets, got object"


@pytest.mark.c_extension
def test_fan_out_twins_drive_sends_the_same_way(both_impls: list[Any]) -> None:
    """Completed, suspended, failed, refused and skipped members, on each twin: the same outcome."""
    outcomes = []
    for impl in both_impls:
        loop = asyncio.new_event_loop()
        try:

            async def run(impl: Any = impl) -> Any:
                peers = [await member(impl.WebSocket) for _ in range(5)]
                peers[1][1].hold()
                peers[2][1].fail = ConnectionResetError("gone")
                peers[3][1].fail = RuntimeError("refused")
                await peers[4][0].close()
                suspended: list[Any] = []
                queued: list[Any] = []
                lost: list[Any] = []
                busy = {peers[0][0]: None}
                event = {"type": "websocket.send", "text": "x"}
                members = [ws for ws, _ in peers]
                delivered = impl.module.fan_out(members, event, busy, suspended, queued, lost)
                result = (
                    delivered,
                    [members.index(ws) for ws in queued],
                    [members.index(ws) for ws, _, _ in suspended],
                    [(members.index(ws), type(exc).__name__) for ws, exc in lost],
                    [ws.application_state.name for ws in members],
                )
                for _, iterator, _ in suspended:
                    iterator.close()
                delivered = impl.module.fan_out(members[:1], event, {}, suspended, queued, lost)
                return result, delivered

            outcomes.append(loop.run_until_complete(run()))
        finally:
            loop.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] == (
        (0, [0], [1], [(2, "ConnectionResetError"), (3, "RuntimeError")], ["CONNECTED", "CONNECTED", "DISCONNECTED", "CONNECTED", "DISCONNECTED"]),
        1,
    )


def test_lifespan_with_starlette() -> None:
    hub = Hub()

    async def chat(websocket: Any) -> None:
        ws = bocadillo_ws.WebSocket.from_starlette(websocket, value_type="json")
        async with ws, hub.join("lobby", ws):
            async for message in ws:
                await hub.publish("lobby", {"echo": message})

    app = Starlette(routes=[WebSocketRoute("/ws", chat)], lifespan=hub.lifespan)
    with TestClient(app) as client, client.websocket_connect("/ws") as one:
        one.send_json({"n": 1})
        assert one.receive_json() == {"echo": {"n": 1}}
        assert hub.stats().members == 1
