"""The message methods' awaitables behave like coroutines, on both backends.

Both backends' message methods are ``async def`` coroutine functions; these
tests hold them to what code written for Starlette does with
``ws.receive_text()`` and friends: await it after a real suspension, hand it
to ``asyncio.create_task`` / ``wait_for`` / ``gather``, cancel it while it
waits, and never await it twice.
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import inspect
import re
from typing import Any

import anyio
import pytest
from starlette.background import BackgroundTask, BackgroundTasks

from asgi_helpers import SCOPE, binary, connect, text
from bocadillo_ws import UnexpectedMessageType, WebSocketDisconnect

pytestmark = pytest.mark.anyio


class QueueTransport:
    """A transport whose receive() really waits, as a server's does."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.send_gate: asyncio.Event | None = None
        self.send_error: BaseException | None = None

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        if self.send_gate is not None:
            await self.send_gate.wait()  # flow control: the send suspends
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(message)


async def accepted(WebSocket: type[Any], **options: Any) -> tuple[Any, QueueTransport]:
    transport = QueueTransport()
    ws = WebSocket(dict(SCOPE), transport.receive, transport.send, **options)
    transport.inbox.put_nowait(connect())
    await ws.accept()
    return ws, transport


async def test_receive_waits_for_the_frame(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    asyncio.get_running_loop().call_later(0.01, transport.inbox.put_nowait, text("late"))
    assert await ws.receive_text() == "late"


async def test_every_method_is_a_coroutine_for_asyncio(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket, value_type="json")
    calls = [ws.receive_text(), ws.receive_bytes(), ws.receive_json(), ws.receive(), ws.receive_event(),
             ws.send_text("a"), ws.send_bytes(b"a"), ws.send_json(1), ws.send(1), ws.send_event({}), ws.__anext__()]
    for call in calls:
        assert isinstance(call, collections.abc.Coroutine)
        assert asyncio.iscoroutine(call)
        call.close()  # never started: closing is enough, nothing is sent
    assert transport.sent[1:] == []


async def test_create_task_wait_for_and_gather(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket, value_type="json")
    task = asyncio.create_task(ws.receive_json())
    await asyncio.sleep(0)
    assert not task.done()
    transport.inbox.put_nowait(text('{"n": 1}'))
    assert await asyncio.wait_for(task, 5) == {"n": 1}
    transport.inbox.put_nowait(binary(b"[2]"))
    assert await asyncio.wait_for(ws.receive(), 5) == [2]
    await asyncio.gather(ws.send_json({"a": 1}), ws.send_text("b"), ws.send_bytes(b"c"))
    assert transport.sent[1:] == [
        {"type": "websocket.send", "text": '{"a":1}'},
        {"type": "websocket.send", "text": "b"},
        {"type": "websocket.send", "bytes": b"c"},
    ]


async def test_results_that_are_tuples_or_exceptions_come_back_as_values(WebSocket: type[Any]) -> None:
    # A C coroutine hands its result back through StopIteration on 3.12+:
    # a tuple or an exception instance must not be unpacked or raised.
    class Codec:
        @staticmethod
        def dumps(obj: Any) -> str:
            return "null"

        @staticmethod
        def loads(payload: str) -> Any:
            return (1, 2) if payload == "t" else ValueError("a value, not an error")

    ws, transport = await accepted(WebSocket, json_codec=Codec())
    asyncio.get_running_loop().call_later(0.01, transport.inbox.put_nowait, text("t"))
    assert await ws.receive_json() == (1, 2)
    transport.inbox.put_nowait(text("e"))
    result = await asyncio.create_task(ws.receive_json())
    assert type(result) is ValueError and str(result) == "a value, not an error"


async def test_wait_for_timeout_cancels_a_waiting_receive(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.receive_text(), 0.01)
    # The connection is still usable: the next frame goes to the next call.
    transport.inbox.put_nowait(text("after"))
    assert await ws.receive_text() == "after"


async def test_cancelling_the_task_cancels_the_wait(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    task = asyncio.create_task(ws.receive_bytes())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport.inbox.empty()


async def test_errors_after_a_suspension(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    asyncio.get_running_loop().call_later(0.01, transport.inbox.put_nowait, binary(b"x"))
    with pytest.raises(UnexpectedMessageType):
        await ws.receive_text()
    asyncio.get_running_loop().call_later(0.01, transport.inbox.put_nowait, {"type": "websocket.disconnect", "code": 1001})
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.receive_text()
    assert info.value.code == 1001


async def test_a_send_that_suspends_then_fails_is_a_disconnect(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    transport.send_gate = asyncio.Event()
    transport.send_error = ConnectionResetError("peer gone")
    asyncio.get_running_loop().call_later(0.01, transport.send_gate.set)
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.send_text("hello")
    assert info.value.code == 1006
    assert isinstance(info.value.__context__, ConnectionResetError)
    assert ws.application_state.name == "DISCONNECTED"


async def test_awaiting_twice_is_an_error(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    call = ws.send_text("once")
    await call
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        await call
    assert [m.get("text") for m in transport.sent[1:]] == ["once"]


async def test_bad_arguments_raise_when_awaited_not_when_called(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    call = ws.send_text(b"bytes")  # nothing happens yet, as with a coroutine
    with pytest.raises(TypeError, match="send_text\\(\\) expects str, got bytes"):
        await call
    mode_call = ws.receive_json(mode="xml")
    with pytest.raises(RuntimeError, match=re.escape('The "mode" argument should be "text" or "binary".')):
        await mode_call
    assert transport.sent[1:] == []


async def test_async_for_over_a_live_queue(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket, value_type="json")
    loop = asyncio.get_running_loop()
    for i in range(3):
        loop.call_later(0.005 * (i + 1), transport.inbox.put_nowait, text(f'{{"i": {i}}}'))
    loop.call_later(0.03, transport.inbox.put_nowait, {"type": "websocket.disconnect", "code": 1000})
    seen = []
    async with ws:
        async for message in ws:
            seen.append(message["i"])
    assert seen == [0, 1, 2]


# --------------------------------------------------------------------------- coroutine functions (issue 10)

ASYNC_METHODS = [
    "accept", "close", "ensure_closed", "receive", "send", "receive_text", "receive_bytes", "receive_json",
    "send_text", "send_bytes", "send_json", "receive_event", "send_event", "send_denial_response",
]


@pytest.mark.parametrize("name", ASYNC_METHODS)
async def test_every_public_async_method_is_a_coroutine_function(WebSocket: type[Any], name: str) -> None:
    from starlette._utils import is_async_callable

    ws, _ = await accepted(WebSocket)
    for method in (getattr(WebSocket, name), getattr(ws, name)):  # unbound and bound
        assert inspect.iscoroutinefunction(method), method
        assert is_async_callable(method), method
        assert is_async_callable(functools.partial(method)), method


async def test_background_tasks_deliver(WebSocket: type[Any]) -> None:
    # Starlette runs a callable that is not async in a thread pool and drops
    # what it returns: a method that only looks async would send nothing.
    ws, transport = await accepted(WebSocket, value_type="json")
    await BackgroundTask(ws.send_text, "text")()
    await BackgroundTask(ws.send, {"via": "send"})()
    tasks = BackgroundTasks()
    tasks.add_task(ws.send_bytes, b"bytes")
    tasks.add_task(ws.send_json, [1])
    await tasks()
    await BackgroundTask(ws.close, 4000)()
    assert transport.sent[1:] == [
        {"type": "websocket.send", "text": "text"},
        {"type": "websocket.send", "text": '{"via":"send"}'},
        {"type": "websocket.send", "bytes": b"bytes"},
        {"type": "websocket.send", "text": "[1]"},
        {"type": "websocket.close", "code": 4000, "reason": ""},
    ]


async def test_anyio_start_soon_and_asyncio_scheduling_deliver(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    async with anyio.create_task_group() as group:
        group.start_soon(ws.send_text, "from anyio")
        group.start_soon(ws.send, "typed send")
    await asyncio.create_task(ws.send_text("from a task"))
    await asyncio.wait_for(ws.send_bytes(b"within a deadline"), 5)
    assert sorted(m.get("text") or m["bytes"].decode() for m in transport.sent[1:]) == [
        "from a task", "from anyio", "typed send", "within a deadline",
    ]


# --------------------------------------------------------------------------- the compiled awaitable's edges
#
# The compiled backend's calls with positional arguments skip the Python
# coroutine (_awaitable.h); keyword calls take it. Both must behave as the
# pure twin's coroutines do, in every way a caller can tell.


async def test_keyword_and_positional_calls_agree(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    await ws.send_json({"a": 1}, "binary")
    await ws.send_json(data={"a": 1}, mode="binary")
    await ws.send_text(data="t")
    await ws.send_event(event={"type": "websocket.send", "text": "e"})
    assert transport.sent[1:] == [
        {"type": "websocket.send", "bytes": b'{"a":1}'},
        {"type": "websocket.send", "bytes": b'{"a":1}'},
        {"type": "websocket.send", "text": "t"},
        {"type": "websocket.send", "text": "e"},
    ]
    transport.inbox.put_nowait(binary(b"[1]"))
    transport.inbox.put_nowait(binary(b"[2]"))
    assert await ws.receive_json("binary") == [1]
    assert await ws.receive_json(mode="binary") == [2]
    with pytest.raises(TypeError):
        ws.send_text()  # a missing argument fails at the call, as for any coroutine function
    with pytest.raises(TypeError):
        ws.send_text("a", "b")


async def test_a_call_never_awaited_warns(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    with pytest.warns(RuntimeWarning, match=r"coroutine '\w+\.send_text' was never awaited"):
        ws.send_text("lost")
    with pytest.warns(RuntimeWarning, match=r"coroutine '\w+\.receive_json' was never awaited"):
        ws.receive_json()
    assert transport.sent[1:] == []


async def test_a_server_send_returning_a_future_or_a_non_awaitable(WebSocket: type[Any]) -> None:
    sent: list[dict[str, Any]] = []

    def future_send(message: dict[str, Any]) -> asyncio.Future[None]:
        sent.append(message)
        done = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(done.set_result, None)
        return done

    transport = QueueTransport()
    ws = WebSocket(dict(SCOPE), transport.receive, future_send)
    transport.inbox.put_nowait(connect())
    await ws.accept()
    await ws.send_text("via a future")
    assert sent[1:] == [{"type": "websocket.send", "text": "via a future"}]

    async def await_it(value: Any) -> None:
        await value

    with pytest.raises(TypeError) as native:  # the interpreter's own message (3.14 changed it)
        await await_it(42)
    ws2 = WebSocket(dict(SCOPE), transport.receive, lambda message: 42)
    ws2.application_state = ws2.client_state = ws.client_state  # connected
    with pytest.raises(TypeError, match=re.escape(str(native.value))):
        await ws2.send_text("x")


async def test_cancelling_a_suspended_send(WebSocket: type[Any]) -> None:
    ws, transport = await accepted(WebSocket)
    transport.send_gate = asyncio.Event()
    task = asyncio.create_task(ws.send_text("held"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport.sent[1:] == []
    assert ws.application_state.name == "CONNECTED"  # a cancelled send is not a lost connection


async def test_driving_the_awaitable_by_hand(WebSocket: type[Any]) -> None:
    # What an event loop does with a coroutine: send(None) until StopIteration, throw() into it.
    ws, transport = await accepted(WebSocket)
    transport.inbox.put_nowait(text("now"))
    call = ws.receive_text()
    with pytest.raises(StopIteration) as stop:
        call.send(None)
    assert stop.value.value == "now"
    held = ws.receive_text()  # the queue is empty: it suspends
    assert held.send(None) is not None
    with pytest.raises(KeyError, match="thrown"):
        held.throw(KeyError("thrown"))
    never_started = ws.send_text("x")
    with pytest.raises(ValueError, match="into a new one"):
        never_started.throw(ValueError("into a new one"))
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        never_started.send(None)
    assert transport.sent[1:] == []
