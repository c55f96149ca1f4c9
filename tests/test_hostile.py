"""Hostile callers: nothing a Python caller does to the message methods crashes the interpreter.

Each test does from Python what a careless or hostile caller could: build
the compiled backend's C types by hand, re-enter a call while it runs,
await one call twice, throw odd arguments into it, hand the extension
objects it does not expect. Both backends behave the same (the pure twin's
calls are native coroutines, which already refuse all of this), with the
same exception types and messages, except where a test says it is about a
C type only.

What crashed the interpreter on 2c5ada6 runs in a child interpreter
(``run_child``), so the old code gives a failed test, not a crashed run;
under the ``sanitizers`` tox env the child inherits ASan/UBSan too.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import types
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from starlette.websockets import WebSocketState

from asgi_helpers import SCOPE, connect, text

C_ONLY = pytest.mark.c_extension

# The child's preamble: a connected WebSocket on the backend named by TAG
# ("c" or "py"), as tests/conftest.py builds the public class.
CHILD_PRELUDE = '''
import asyncio, gc, sys
from starlette.websockets import WebSocket as StarletteWebSocket
import bocadillo_ws
from bocadillo_ws._websocket import WebSocketAPI

module = __import__("bocadillo_ws._codec" if TAG == "c" else "bocadillo_ws._codec_py", fromlist=["_"])
if TAG == "c":
    assert bocadillo_ws.BACKEND == "cython" or module.__name__.endswith("_codec"), "no compiled backend"
if module.WebSocketCore is bocadillo_ws._backend.WebSocketCore:
    WebSocket = bocadillo_ws.WebSocket
else:
    WebSocket = type("WebSocket", (WebSocketAPI, module.WebSocketCore, StarletteWebSocket), {})

async def _receive():
    return {"type": "websocket.connect"}

async def _send(message):
    pass

def connected(send=_send, receive=_receive, **options):
    ws = WebSocket({"type": "websocket", "path": "/", "headers": []}, receive, send, **options)
    ws.client_state = ws.application_state = 1  # connected both ways
    return ws

def outcome(call):
    try:
        return ("returned", call())
    except BaseException as exc:
        return (type(exc).__name__, str(exc))
'''


def run_child(tag: str, body: str) -> list[str]:
    """Run ``body`` after CHILD_PRELUDE in a fresh interpreter; its output lines (it must exit cleanly)."""
    code = f"TAG = {tag!r}\n{CHILD_PRELUDE}\n{textwrap.dedent(body)}"
    # -P -s, not -I: the child keeps PYTHON* variables (the sanitizer env's PYTHONMALLOC=malloc).
    argv = [sys.executable, "-P", "-s", "-c", code]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"the child exited with {result.returncode}:\n{result.stderr[-3000:]}"
    assert result.stdout.splitlines()[-1:] == ["done"], result.stdout + result.stderr[-3000:]
    return result.stdout.splitlines()[:-1]


# --------------------------------------------------------------------------- the C types (compiled only)


@C_ONLY
def test_the_c_types_cannot_be_instantiated() -> None:
    # Instantiated from Python, their fields were NULL: the first use was a segfault.
    lines = run_child("c", '''
        ws = connected()
        call = ws.send_text("x")
        for kind in (type(call), type(WebSocket.send_text)):
            assert kind.__module__ == "bocadillo_ws._codec", kind
            for make in (lambda: kind(), lambda: kind.__new__(kind), lambda: object.__new__(kind)):
                print(kind.__name__, *outcome(make))
        import copy, pickle
        print("copy", *outcome(lambda: copy.copy(call)))
        print("pickle", *outcome(lambda: pickle.dumps(WebSocket.send_text)))
        call.close()
        print("done")
    ''')
    for name in ("MethodAwaitable", "CoroutineMethod"):
        made = [line for line in lines if line.startswith(f"{name} ")]
        assert made[0] == f"{name} TypeError cannot create 'bocadillo_ws._codec.{name}' instances"
        assert len(made) == 3 and all(line.startswith(f"{name} TypeError ") for line in made), made
    assert lines[-2:] == [
        "copy TypeError cannot pickle 'bocadillo_ws._codec.MethodAwaitable' object",
        "pickle TypeError cannot pickle 'bocadillo_ws._codec.CoroutineMethod' object",
    ]


@C_ONLY
def test_awaitable_checks_its_arguments_per_kind() -> None:
    # _codec.awaitable(ws, 4) (send_text with no data) read a NULL argument when awaited.
    lines = run_child("c", '''
        from bocadillo_ws import _codec
        ws = connected(value_type="json")
        for kind in range(-1, 11):
            for count in range(4):
                def make():
                    call = _codec.awaitable(ws, kind, *[{"type": "websocket.send", "text": "a"}] * count)
                    try:
                        call.send(None)
                    except StopIteration:
                        pass
                    return "ok"
                print(kind, count, *outcome(make))
        print("done")
    ''')
    takes = {0: (0, 0), 1: (0, 0), 2: (0, 1), 3: (0, 0), 4: (1, 1), 5: (1, 1), 6: (1, 2), 7: (1, 1), 8: (0, 0), 9: (1, 1)}
    names = "receive_text receive_bytes receive_json receive_event send_text send_bytes send_json send_event".split()
    names += ["receive", "send"]
    for line in lines:
        kind, count, verdict = line.split(" ", 2)
        k, n = int(kind), int(count)
        if k not in takes:
            assert verdict == f"ValueError no method call of kind {k}", line
        elif takes[k][0] <= n <= takes[k][1]:
            assert not verdict.startswith("TypeError awaitable()"), line  # taken (it may still fail on its data)
        else:
            least, most = takes[k]
            expected = f"{least} to {most}" if least != most else f"{least}"
            assert verdict == (
                f"TypeError awaitable(): a {names[k]}() call takes {expected} arguments after self, got {n}"
            ), line
    assert len(lines) == 12 * 4


@C_ONLY
def test_a_freed_subclass_cannot_lend_its_place_in_the_type_cache() -> None:
    # The fast path remembered the last WebSocket subclass by a borrowed pointer:
    # once that class was freed, a foreign class allocated at its address took
    # the fast path and its instances were read as connections.
    lines = run_child("c", '''
        class Sub(WebSocket):
            pass

        sub = Sub({"type": "websocket", "path": "/", "headers": []}, _receive, _send)
        sub.send_text("x").close()  # the call that fills the cache
        address = id(Sub)
        del sub, Sub
        gc.collect()
        for attempt in range(10000):  # a class the size of Sub's, until one lands where Sub was
            Foreign = type("Foreign", (), {})
            if id(Foreign) == address:
                break
            del Foreign
        else:
            Foreign = type("Foreign", (), {})
        print("landed", id(Foreign) == address, file=sys.stderr)  # on 2c5ada6: at once, most runs
        foreign = Foreign()
        print(*outcome(lambda: WebSocket.send_text(foreign, "x").send(None)))
        print("done")
    ''')
    assert lines[-1] == "TypeError expected a WebSocketCore, got Foreign", lines


# --------------------------------------------------------------------------- re-entering a running call


REENTRY = {
    "send": "holder['call'].send(None)",
    "next": "next(holder['call'].__await__())",
    "throw": "holder['call'].throw(KeyError('thrown'))",
    "close": "holder['call'].close()",
}


@pytest.mark.parametrize("how", sorted(REENTRY))
def test_a_running_call_refuses_reentry_from_the_server_send(impl: Any, how: str) -> None:
    # The server's send, while the call drives it, reaches the call itself:
    # a running coroutine refuses; the C awaitable freed the send it was running.
    lines = run_child(impl.tag, f'''
        holder = {{}}
        sent = []

        async def server_send(message):
            print("running", holder["call"].cr_running)
            print("inside", *outcome(lambda: {REENTRY[how]}))
            sent.append(message)

        ws = connected(send=server_send)
        holder["call"] = ws.send_text("once")
        print("outer", *outcome(lambda: holder["call"].send(None)))
        print("after", holder["call"].cr_running, sent)
        holder.clear()
        gc.collect()
        print("done")
    ''')
    assert lines == [
        "running True",
        "inside ValueError coroutine already executing",
        "outer StopIteration ",
        "after False [{'type': 'websocket.send', 'text': 'once'}]",
    ]


def test_a_running_call_refuses_reentry_from_its_own_json_codec(impl: Any) -> None:
    # The codec runs before the server's send (the C awaitable's start), with the call marked running.
    lines = run_child(impl.tag, '''
        holder = {}

        class Codec:
            @staticmethod
            def dumps(data):
                print("inside", *outcome(lambda: holder["call"].send(None)))
                print("close", *outcome(lambda: holder["call"].close()))
                return "[1]"

            @staticmethod
            def loads(payload):
                return payload

        sent = []

        async def server_send(message):
            sent.append(message)

        ws = connected(send=server_send, json_codec=Codec())
        holder["call"] = ws.send_json([1])
        print("outer", *outcome(lambda: holder["call"].send(None)))
        print(sent)
        print("done")
    ''')
    assert lines == [
        "inside ValueError coroutine already executing",
        "close ValueError coroutine already executing",
        "outer StopIteration ",
        "[{'type': 'websocket.send', 'text': '[1]'}]",
    ]


def test_a_call_that_awaits_itself(impl: Any) -> None:
    # A server send that awaits the very call driving it.
    lines = run_child(impl.tag, '''
        holder = {}

        async def server_send(message):
            await holder["call"]

        ws = connected(send=server_send)
        holder["call"] = ws.send_text("x")
        print(*outcome(lambda: holder["call"].send(None)))
        holder.clear()
        print("done")
    ''')
    assert lines == ["ValueError coroutine already executing"]


# --------------------------------------------------------------------------- awaiting a call twice


class Gate:
    """A server whose receive waits for a frame and whose send can be held."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.open = asyncio.Event()
        self.open.set()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        await self.open.wait()
        self.sent.append(message)


async def gated(WebSocket: type[Any]) -> tuple[Any, Gate]:
    gate = Gate()
    ws = WebSocket(dict(SCOPE), gate.receive, gate.send)
    gate.inbox.put_nowait(connect())
    await ws.accept()
    return ws, gate


@pytest.mark.anyio
async def test_a_second_await_of_a_suspended_receive_is_refused(WebSocket: type[Any]) -> None:
    # A second task awaiting the same pending call co-drove the server's
    # receive and could take the frame meant for the first.
    ws, gate = await gated(WebSocket)
    call = ws.receive_text()
    first = asyncio.ensure_future(call)
    await asyncio.sleep(0)  # started, now waiting for a frame
    assert call.cr_suspended and not call.cr_running

    async def second() -> Any:
        return await call

    with pytest.raises(RuntimeError, match=r"^coroutine is being awaited already$"):
        await asyncio.wait_for(second(), 5)  # the bound only keeps the old code from hanging
    gate.inbox.put_nowait(text("for the first"))
    assert await first == "for the first"
    with pytest.raises(RuntimeError, match=r"^cannot reuse already awaited coroutine$"):
        await call


@pytest.mark.anyio
async def test_a_second_await_of_a_suspended_send_is_refused(WebSocket: type[Any]) -> None:
    ws, gate = await gated(WebSocket)
    gate.open.clear()
    call = ws.send_text("held")
    first = asyncio.ensure_future(call)
    await asyncio.sleep(0)

    async def second() -> Any:
        return await call

    with pytest.raises(RuntimeError, match=r"^coroutine is being awaited already$"):
        await asyncio.wait_for(second(), 5)
    gate.open.set()
    await first
    assert gate.sent[1:] == [{"type": "websocket.send", "text": "held"}]


# --------------------------------------------------------------------------- throw() and friends


async def _reference() -> None:
    await asyncio.sleep(3600)


THROWS: list[tuple[Any, ...]] = [
    (),
    (KeyError, None, None, None),
    (42,),
    ("KeyError",),
    (KeyError("instance"), "a separate value"),
    (KeyError, "value", "not a traceback"),
    (KeyError, "value"),
    (KeyError, ("a", "b")),
    (KeyError("instance"), None, None),
    (KeyError("instance"),),
    (StopIteration,),
    (GeneratorExit,),
]


def _throw_outcome(call: Any, args: tuple[Any, ...]) -> tuple[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: the 3-argument form
        try:
            yielded = call.throw(*args)
        except BaseException as exc:
            return type(exc).__name__, str(exc)
    return "yielded", type(yielded).__name__


def _then(call: Any) -> tuple[str, str]:
    """What the call does next: its state after the throw()."""
    try:
        call.send(None)
    except BaseException as exc:
        return type(exc).__name__, str(exc)
    finally:
        call.close()
    return "running", ""


@pytest.mark.parametrize("args", THROWS, ids=repr)
def test_throw_into_a_new_call_is_a_coroutines_throw(WebSocket: type[Any], args: tuple[Any, ...]) -> None:
    # Compared with a native coroutine that has not started: argument checks
    # first (nothing changes when they fail), else the exception ends the call.
    ws = WebSocket(dict(SCOPE), None, None)
    reference = _reference()
    call = ws.send_text("x")
    assert _throw_outcome(call, args) == _throw_outcome(reference, args)
    reused = ("RuntimeError", "cannot reuse already awaited coroutine")
    if _then(reference) == reused:  # the exception ended it
        assert _then(call) == reused
    else:  # refused: still new, so it starts (and meets Starlette's "not accepted yet")
        then = _then(call)
        assert then[0] == "RuntimeError" and then != reused


@pytest.mark.parametrize("args", THROWS, ids=repr)
def test_throw_into_a_finished_call(WebSocket: type[Any], args: tuple[Any, ...]) -> None:
    ws = WebSocket(dict(SCOPE), None, None)
    reference = _reference()
    reference.close()
    call = ws.send_text("x")
    call.close()
    assert _throw_outcome(call, args) == _throw_outcome(reference, args)
    assert call.cr_await is None and not call.cr_running and not call.cr_suspended
    assert call.close() is None  # closing twice is harmless, as for a coroutine
    assert _then(call) == ("RuntimeError", "cannot reuse already awaited coroutine")


@pytest.mark.parametrize("args", THROWS, ids=repr)
@pytest.mark.anyio
async def test_throw_into_a_suspended_call(WebSocket: type[Any], args: tuple[Any, ...]) -> None:
    # Both backends hand throw() to the server's waiting receive, as `await` does.
    ws, gate = await gated(WebSocket)
    call = ws.receive_text()
    assert call.send(None) is not None  # suspended in the server's receive
    outcome = _throw_outcome(call, args)
    if len(args) == 0 or len(args) > 3:
        assert outcome[0] == "TypeError" and outcome[1].startswith("throw expected at")
    elif outcome[0] != "yielded":  # the server's receive ended with it, and so did the call
        assert call.cr_await is None and not call.cr_suspended
    call.close()
    gate.inbox.put_nowait(text("after"))
    assert await asyncio.wait_for(ws.receive_text(), 5) == "after"  # the connection still works


@C_ONLY
@pytest.mark.parametrize("args", THROWS, ids=repr)
@pytest.mark.anyio
async def test_throw_into_a_suspended_call_is_the_same_on_both_backends(
    both_impls: list[Any], args: tuple[Any, ...]
) -> None:
    outcomes = []
    for impl in both_impls:
        ws, _ = await gated(impl.WebSocket)
        call = ws.receive_text()
        call.send(None)
        outcomes.append((_throw_outcome(call, args), _then(call)))
    assert outcomes[0] == outcomes[1]


# --------------------------------------------------------------------------- objects the extension does not expect


def test_an_instance_never_bound_fails_cleanly(impl: Any) -> None:
    # WebSocket.__new__ without __init__: the compiled send_json read None as its JSON codec.
    lines = run_child(impl.tag, '''
        ws = WebSocket.__new__(WebSocket)
        print(*outcome(lambda: ws.send_json([1]).send(None)))
        for name in ("send_text", "send_bytes", "send", "send_event", "receive_text", "receive_bytes",
                     "receive_json", "receive", "receive_event"):
            args = ([1],) if name.startswith("send") else ()
            try:
                getattr(ws, name)(*args).send(None)
            except Exception:
                pass  # the pure twin has no fields yet, the compiled one has defaults: either fails cleanly
        print("done")
    ''')
    # The pure twin's words name the class as the interpreter does (3.13: with its module, here "abc").
    (line,) = lines
    assert line.startswith("AttributeError '") and line.endswith("WebSocket' object has no attribute '_json'")


def test_an_adopted_state_out_of_range(impl: Any) -> None:
    # _adopt() copies the framework object's states as they are; the compiled
    # getters indexed a tuple with bounds checks off.
    lines = run_child(impl.tag, '''
        from types import SimpleNamespace as Namespace
        ws = connected()
        ws._adopt(Namespace(client_state=Namespace(value=100), application_state=Namespace(value=-1)))
        print(*outcome(lambda: ws.client_state))
        print(*outcome(lambda: ws.application_state.name))
        print("done")
    ''')
    assert lines == ["IndexError tuple index out of range", "returned RESPONSE"]


# --------------------------------------------------------------------------- the free list and the GC


def test_a_call_the_gc_finalized_is_not_reused_silently(WebSocket: type[Any]) -> None:
    # A never-awaited call in a reference cycle is finalized by the GC (it
    # warns); reused from the free list, the next never-awaited call did not.
    ws = WebSocket(dict(SCOPE), None, None)
    for _ in range(3):
        data: list[Any] = []
        with pytest.warns(RuntimeWarning, match=r"coroutine '\w+\.send_text' was never awaited"):
            data.append(ws.send_text(data))  # the call holds data, data holds the call
            del data
            gc.collect()
        with pytest.warns(RuntimeWarning, match=r"coroutine '\w+\.send_text' was never awaited"):
            ws.send_text("forgotten")


# --------------------------------------------------------------------------- generator-based coroutines


def iterable_coroutine_send(sent: list[Any], *, suspend: bool) -> Callable[[Any], Any]:
    @types.coroutine
    def send(message: Any) -> Any:  # a @types.coroutine generator: `await` accepts it
        if suspend:
            yield from asyncio.sleep(0)
        sent.append(message)

    return send


@pytest.mark.parametrize("suspend", [False, True], ids=["returns", "suspends"])
@pytest.mark.anyio
async def test_a_generator_based_coroutine_as_the_server_send(WebSocket: type[Any], suspend: bool) -> None:
    sent: list[Any] = []
    gate = Gate()
    ws = WebSocket(dict(SCOPE), gate.receive, iterable_coroutine_send(sent, suspend=suspend))
    gate.inbox.put_nowait(connect())
    await ws.accept()
    await ws.send_text("t")
    await ws.send_bytes(b"b")
    await ws.send_json({"j": 1})
    await ws.send_event({"type": "websocket.send", "text": "e"})
    assert [m.get("text") or m.get("bytes") for m in sent[1:]] == ["t", b"b", '{"j":1}', "e"]


@pytest.mark.anyio
async def test_a_generator_based_coroutine_as_the_server_receive(WebSocket: type[Any]) -> None:
    events = [connect(), text("hello")]

    @types.coroutine
    def receive() -> Any:
        yield from asyncio.sleep(0)
        return events.pop(0)

    async def send(message: Any) -> None:
        pass

    ws = WebSocket(dict(SCOPE), receive, send)
    await ws.accept()
    assert await ws.receive_text() == "hello"


@pytest.mark.filterwarnings("ignore:coroutine '_reference' was never awaited")
@pytest.mark.anyio
async def test_what_await_refuses_is_refused_with_its_words(WebSocket: type[Any]) -> None:
    def plain_generator() -> Any:
        yield

    class ReturnsACoroutine:
        def __await__(self) -> Any:
            return _reference()

    class ReturnsANonIterator:
        def __await__(self) -> Any:
            return 42

    for make in (plain_generator, ReturnsACoroutine, ReturnsANonIterator):
        async def native(value: Any) -> None:
            await value

        value = make()
        with pytest.raises(TypeError) as expected:
            await native(value)
        value = make()
        ws = WebSocket(dict(SCOPE), None, lambda message, make=make: make())
        ws.client_state = ws.application_state = WebSocketState.CONNECTED
        with pytest.raises(TypeError) as got:
            await ws.send_text("x")
        assert str(got.value) == str(expected.value)
    gc.collect()  # the reference coroutines that were never awaited


@pytest.mark.parametrize("suspend", [False, True], ids=["returns", "suspends"])
def test_fan_out_takes_a_generator_based_coroutine(impl: Any, suspend: bool) -> None:
    # The hub's loop drove such a send as `await` does not, and dropped the member.
    sent: list[Any] = []
    ws = impl.WebSocket(dict(SCOPE), None, iterable_coroutine_send(sent, suspend=suspend))
    ws.client_state = ws.application_state = WebSocketState.CONNECTED
    event = {"type": "websocket.send", "text": "to all"}
    suspended: list[Any] = []
    lost: list[Any] = []
    delivered = impl.module.fan_out([ws], event, None, suspended, [], lost)
    assert lost == []
    if suspend:
        assert delivered == 0 and len(suspended) == 1
        _, iterator, _ = suspended[0]
        with pytest.raises(StopIteration):
            iterator.send(None)
    else:
        assert delivered == 1 and suspended == []
    assert sent == [event]


@pytest.mark.anyio
async def test_a_stop_iteration_from_a_codec_is_not_a_return(WebSocket: type[Any]) -> None:
    # In a coroutine a StopIteration becomes RuntimeError (PEP 479); the C
    # awaitable passed it on, which its awaiter read as "returned None".
    class Codec:
        @staticmethod
        def dumps(data: Any) -> str:
            raise StopIteration("from dumps")

        @staticmethod
        def loads(payload: str) -> Any:
            raise StopIteration("from loads")

    ws, gate = await gated(WebSocket)
    ws._bind(gate.receive, gate.send, "json", "json", True, Codec())
    ws.client_state = ws.application_state = WebSocketState.CONNECTED
    for call in (ws.send_json([1]), ws.send([1])):
        with pytest.raises(RuntimeError, match=r"^coroutine raised StopIteration$") as info:
            await call
        assert isinstance(info.value.__cause__, StopIteration)
    gate.inbox.put_nowait(text("[1]"))
    with pytest.raises(RuntimeError, match=r"^coroutine raised StopIteration$"):
        await ws.receive_json()
    assert gate.sent[1:] == []
