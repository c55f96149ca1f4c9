"""Faults through a real server: vanishing clients, bad clients, nothing left behind.

uvicorn on loopback (``servers.serve``), real ``websockets`` clients, every
test once per backend (``c``, ``py``) and per uvicorn WebSocket
implementation (``websockets-sansio``, the legacy ``websockets``):

(a) clients that vanish mid-conversation (SO_LINGER 0, then close: the
    kernel sends a TCP RST, no close frame), some while the server is
    flooding them, while other clients keep echoing correctly; every
    server-side ``async with`` ends through the documented disconnect path
    (``WebSocketDisconnect`` silenced, nothing sent after it);
(b) a client sending a wrong frame kind / bad JSON among good traffic gets
    close 1003 / 1007 while the others continue;
(c) once every connection has ended, no ``WebSocket`` (ours or Starlette's)
    is alive and the server loop holds as many tasks as before.

The disconnect codes uvicorn reports for a vanished client are recorded
(``TRACKER.codes``; ``pytest -s`` prints them), and checked against the
documented sets. Seen with uvicorn 0.54: websockets-sansio reports 1005 (its
``connection_lost`` once the handshake is done), even for a client that
vanished while the server was flooding it: sends to a lost transport are
dropped silently, so the application learns of the loss at its next
``receive()``, not through a failed send (1006 would be the contract's
transport-failure row, also allowed); the legacy implementation reports 1006.

As in ``test_server.py``, exceptions that end a view are kept for the test
and not passed on to uvicorn (no traceback formatting in the server thread;
see that module's docstring).
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import struct
import threading
import uuid
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from bocadillo_ws import InvalidJSON, UnexpectedMessageType, WebSocketDisconnect
from bocadillo_ws._view import view_endpoint
from servers import NO_PROXY, serve

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,  # once (py313-cython-slow), not on every Python
    pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:remove second argument of ws_handler:DeprecationWarning"),
]

TIMEOUT = 10.0  # any single wait
TEST_TIMEOUT = 60.0  # a whole scenario
UVICORN_WS = ["websockets-sansio", "websockets"]

# Disconnect codes uvicorn gives the application when a client vanishes.
VANISHED_CODES = {"websockets-sansio": {1005, 1006}, "websockets": {1006}}


# --------------------------------------------------------------------------- server side


@dataclass
class Session:
    # The type of the exception that ended the application call: the
    # exception itself is not kept, its traceback would keep the connection alive.
    error: type[BaseException] | None = None
    notes: list[Any] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def closes(self) -> list[int]:
        return [m.get("code", 1000) for m in self.sent if m["type"] == "websocket.close"]


class Tracker:
    """ASGI middleware: per-connection sessions, live connection objects, the server loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sessions: dict[str, Session] = {}
        self.live: weakref.WeakSet[Any] = weakref.WeakSet()  # ours and Starlette's WebSocket objects
        self.created = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.codes: Counter[tuple[str, int]] = Counter()  # (how it ended, code)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.loop = asyncio.get_running_loop()
        token = parse_qs(scope["query_string"].decode()).get("token", ["?"])[0]
        session = self.sessions[token] = Session()
        scope.setdefault("state", {})["session"] = session

        async def tracked_send(message: dict[str, Any]) -> None:
            session.sent.append(message)
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:  # kept for the test: see the module docstring
            session.error = type(exc)
        finally:
            session.done.set()

    def track(self, ws: Any) -> Session:
        self.created += 1
        self.live.add(ws)
        if ws._origin is not None:  # the Starlette WebSocket that from_starlette took over
            self.live.add(ws._origin)
        return ws.scope["state"]["session"]  # type: ignore[no-any-return]

    async def finished(self, token: str) -> Session:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            session = self.sessions.get(token)
            if session is not None and session.done.is_set():
                return session
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"server session {token} did not finish within {TIMEOUT}s")
            await asyncio.sleep(0.01)

    def server_tasks(self) -> int:
        """How many tasks the server's event loop holds (counted in that loop)."""
        assert self.loop is not None

        async def count() -> int:
            return len(asyncio.all_tasks())

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(TIMEOUT)


async def echo(ws: Any) -> None:
    """Echo; ``{"flood": n, "size": s}`` answers with n messages of s bytes of padding."""
    session = ws.scope["app_tracker"].track(ws)
    async with ws:
        try:
            async for message in ws:
                if isinstance(message, dict) and "flood" in message:
                    pad = "x" * message["size"]
                    for k in range(message["flood"]):
                        await ws.send({"i": k, "pad": pad})
                else:
                    await ws.send(message)
        except WebSocketDisconnect as exc:
            session.notes.append(("disconnect", exc.code))
            raise  # async with silences it and sends nothing


def build_app(websocket_class: type[Any]) -> Tracker:
    routes = [
        WebSocketRoute("/json", view_endpoint(echo, websocket_class, {"value_type": "json"})),
        WebSocketRoute("/text", view_endpoint(echo, websocket_class, {"value_type": "text"})),
    ]
    tracker = Tracker(Starlette(routes=routes))
    inner = tracker.app

    async def with_tracker(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["app_tracker"] = tracker
        await inner(scope, receive, send)

    tracker.app = with_tracker
    return tracker


@dataclass
class Server:
    base: str
    tracker: Tracker
    uvicorn_ws: str

    def url(self, path: str) -> tuple[str, str]:
        token = uuid.uuid4().hex
        return token, f"{self.base}{path}?token={token}"


@pytest.fixture(scope="module", params=UVICORN_WS)
def uvicorn_ws(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def server(impl: Any, uvicorn_ws: str) -> Iterator[Server]:
    tracker = build_app(impl.WebSocket)
    with serve(tracker, ws=uvicorn_ws) as base:
        yield Server(base, tracker, uvicorn_ws)


# --------------------------------------------------------------------------- client side


def client(url: str) -> Any:
    return connect(url, **NO_PROXY, ping_interval=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT)


def vanish(conn: ClientConnection) -> None:
    """Drop the TCP connection with no close frame: SO_LINGER 0, then close (an RST)."""
    sock = conn.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.transport.abort()


async def recv(conn: ClientConnection) -> Any:
    return await asyncio.wait_for(conn.recv(), TIMEOUT)


async def good_client(server: Server, path: str, count: int, cid: int) -> str:
    """Sends ``count`` messages, one at a time and pipelined; every echo must be exact, in order."""
    token, url = server.url(path)
    async with client(url) as conn:
        for seq in range(count):
            message = {"cid": cid, "seq": seq, "text": f"é/{cid}/{seq}"}
            wire = json.dumps(message) if path == "/json" else f"{cid}:{seq}:é"
            await conn.send(wire)
            reply = await recv(conn)
            assert (json.loads(reply) if path == "/json" else reply) == (message if path == "/json" else wire)
            if seq % 10 == 0:
                await asyncio.sleep(0)  # let the faulty clients interleave
        burst = [json.dumps({"cid": cid, "burst": k}) for k in range(count)]
        for frame in burst:
            await conn.send(frame)
        replies = [await recv(conn) for _ in burst]
        if path == "/json":
            assert [json.loads(r) for r in replies] == [json.loads(f) for f in burst]
        else:
            assert replies == burst
    return token


async def vanishing_client(server: Server, during_flood: bool, cid: int) -> str:
    token, url = server.url("/json")
    async with client(url) as conn:
        await conn.send(json.dumps({"cid": cid, "hello": True}))
        assert json.loads(await recv(conn)) == {"cid": cid, "hello": True}
        if during_flood:
            # The server is mid-send when the RST arrives: its send fails (1006) or
            # its next receive sees the loss (1005/1006), whichever comes first.
            await conn.send(json.dumps({"flood": 5_000, "size": 2_000}))
            assert json.loads(await recv(conn))["i"] == 0
        vanish(conn)
    return token


async def nothing_left(server: Server, baseline_tasks: int) -> None:
    """Every connection object is gone and the server loop is back to its baseline tasks."""
    tracker = server.tracker
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        gc.collect()
        live = list(tracker.live)
        tasks = await asyncio.to_thread(tracker.server_tasks)
        if not live and tasks == baseline_tasks:
            return
        if asyncio.get_running_loop().time() > deadline:
            kinds = Counter(type(obj).__name__ for obj in live)
            raise AssertionError(f"left behind: {dict(kinds)} connection objects, {tasks} tasks (baseline {baseline_tasks})")
        del live
        await asyncio.sleep(0.05)


async def baseline(server: Server) -> int:
    """The server loop's task count with no connection open (one probe connection first)."""
    token, url = server.url("/text")
    async with client(url) as conn:
        await conn.send("probe")
        assert await recv(conn) == "probe"
    await server.tracker.finished(token)
    await asyncio.sleep(0.05)
    return await asyncio.to_thread(server.tracker.server_tasks)


# --------------------------------------------------------------------------- tests


async def test_vanishing_clients_do_not_disturb_the_others(server: Server) -> None:
    base = await baseline(server)
    created = server.tracker.created

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        good = [good_client(server, "/json" if k % 2 else "/text", 100, k) for k in range(10)]
        quiet = [vanishing_client(server, False, 100 + k) for k in range(10)]
        flooded = [vanishing_client(server, True, 200 + k) for k in range(6)]
        results = await asyncio.gather(*good, *quiet, *flooded)
        return list(results[:10]), list(results[10:20]), list(results[20:])

    good_tokens, quiet_tokens, flooded_tokens = await asyncio.wait_for(scenario(), TEST_TIMEOUT)

    tracker = server.tracker
    for token in good_tokens:
        session = await tracker.finished(token)
        assert session.error is None
        assert session.closes == []  # the client closed; the server sent no close
    for kind, tokens in (("vanished", quiet_tokens), ("vanished-mid-flood", flooded_tokens)):
        for token in tokens:
            session = await tracker.finished(token)
            # The documented path: WebSocketDisconnect, silenced by async with, nothing sent after it.
            assert session.error is None, session.error
            assert len(session.notes) == 1 and session.notes[0][0] == "disconnect", session.notes
            code = int(session.notes[0][1])  # the legacy implementation gives a CloseCode
            tracker.codes[(kind, code)] += 1
            assert code in VANISHED_CODES[server.uvicorn_ws], (kind, code)
            assert session.closes == []
    if server.uvicorn_ws == "websockets-sansio":
        # A quiet client's loss reaches a waiting receive(): uvicorn's connection_lost says 1005.
        assert {code for (kind, code) in tracker.codes if kind == "vanished"} == {1005}
    print(f"\n[{server.uvicorn_ws}] disconnect codes seen by the application: {dict(tracker.codes)}")

    assert tracker.created - created == 26
    await nothing_left(server, base)


@pytest.mark.parametrize(
    ("path", "frame", "code", "error"),
    [
        pytest.param("/text", b"\x00binary", 1003, UnexpectedMessageType, id="binary-to-text-1003"),
        pytest.param("/json", "{bad json", 1007, InvalidJSON, id="bad-json-1007"),
        pytest.param("/json", b"\xff\xfe not utf-8", 1007, InvalidJSON, id="bad-utf8-1007"),
    ],
)
async def test_bad_clients_are_closed_while_the_others_continue(
    server: Server, path: str, frame: str | bytes, code: int, error: type[Exception]
) -> None:
    base = await baseline(server)

    async def bad_client(cid: int) -> tuple[str, int, str]:
        token, url = server.url(path)
        async with client(url) as conn:
            good = json.dumps({"cid": cid, "ok": True})
            for _ in range(5):
                await conn.send(good)
                assert await recv(conn) == (good if path == "/text" else json.dumps({"cid": cid, "ok": True}, separators=(",", ":")))
            await conn.send(frame)
            with pytest.raises(ConnectionClosed) as info:
                await recv(conn)
            assert isinstance(info.value, ConnectionClosedError)
            assert info.value.rcvd is not None, "no close frame from the server"
            return token, info.value.rcvd.code, info.value.rcvd.reason

    async def scenario() -> tuple[list[str], list[tuple[str, int, str]]]:
        good = [good_client(server, "/json" if k % 2 else "/text", 60, k) for k in range(8)]
        bad = [bad_client(100 + k) for k in range(8)]
        results = await asyncio.gather(*good, *bad)
        return list(results[:8]), list(results[8:])

    good_tokens, bad_results = await asyncio.wait_for(scenario(), TEST_TIMEOUT)

    for token, received_code, reason in bad_results:
        assert (received_code, reason) == (code, "")
        session = await server.tracker.finished(token)
        assert session.closes == [code]  # closed once, by async with
        assert session.error is error  # then re-raised, as documented
    for token in good_tokens:
        session = await server.tracker.finished(token)
        assert session.error is None and session.closes == []
    await nothing_left(server, base)


async def test_nothing_is_left_behind_after_a_mixed_crowd(server: Server) -> None:
    """Good, vanishing, bad and server-closed connections at once; then no object or task remains."""
    base = await baseline(server)
    created = server.tracker.created
    assert not list(server.tracker.live)

    async def closes_then_waits(cid: int) -> None:
        _, url = server.url("/json")
        async with client(url) as conn:
            await conn.send(json.dumps([cid]))
            assert json.loads(await recv(conn)) == [cid]
        # async with closed with 1000; the server's async with exits silently.

    async def bad(cid: int) -> None:
        _, url = server.url("/text")
        async with client(url) as conn:
            await conn.send(b"binary")
            with pytest.raises(ConnectionClosedError):
                await recv(conn)

    async def crowd() -> None:
        await asyncio.gather(
            *(good_client(server, "/json", 20, k) for k in range(10)),
            *(vanishing_client(server, k % 3 == 0, 100 + k) for k in range(10)),
            *(closes_then_waits(200 + k) for k in range(10)),
            *(bad(300 + k) for k in range(10)),
        )

    for _ in range(2):  # twice: a leak per round would show as growth
        await asyncio.wait_for(crowd(), TEST_TIMEOUT)
        await nothing_left(server, base)
    assert server.tracker.created - created == 80
    # Starlette's own WebSocket objects (from_starlette took them over) are gone too.
    assert not any(isinstance(obj, StarletteWebSocket) for obj in server.tracker.live)
