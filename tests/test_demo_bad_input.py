"""Property: whatever one chat client sends, only that client is affected (issue 18).

One client sends one arbitrary frame — JSON with lone surrogates, huge
integers, deep nesting, NaN and Infinity, control characters, or no JSON at
all — through the demo's own view (``chat.chat_view``) and a ``Hub``, on
each backend (the hub's fan-out and the members' ``WebSocket`` are that
backend's). Then another member sends a good message: every other member
must still be in the room and get it, no member may have been removed for a
failed send, and the sender is either still there (its frame was fine) or
closed with one of the demo's documented codes (never 1011).

The server side of each member is in memory and frames text as a real
server does (UTF-8: a lone surrogate raises ``UnicodeEncodeError``, as in
uvicorn). Each example runs in its own event loop, every wait bounded.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.websockets import WebSocket as StarletteWebSocket

from asgi_helpers import SCOPE
from bocadillo_ws._view import view_endpoint
from hub_helpers import backend_hub, load_demo

chat = load_demo()

OPTIONS = {"value_type": "json", "max_size": chat.MAX_MESSAGE}
DOCUMENTED_CLOSES = {1007, 1008, 1009}
WAIT = 5.0  # seconds, for what must happen


class Client:
    """The server side of one member: frames queued for the app, text frames encoded as UTF-8 on the way out."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.received: list[Any] = []
        self.closed: int | None = None
        self.got_message = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, event: dict[str, Any]) -> None:
        if event["type"] == "websocket.send":
            payload = event["text"] if event.get("text") is not None else event["bytes"]
            if isinstance(payload, str):
                payload.encode()  # a real server frames text as UTF-8
            self.received.append(json.loads(payload))
            if self.received[-1].get("type") == "message":
                self.got_message.set()
        elif event["type"] == "websocket.close":
            self.closed = event.get("code", 1000)

    def say(self, frame: str | bytes) -> None:
        key = "text" if isinstance(frame, str) else "bytes"
        self.inbox.put_nowait({"type": "websocket.receive", key: frame})

    def hang_up(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})


def scope(name: str) -> dict[str, Any]:
    return {
        **SCOPE,
        "path": "/ws/lobby",
        "raw_path": b"/ws/lobby",
        "query_string": f"name={name}".encode(),
        "path_params": {"room": "lobby"},
        "headers": [(b"host", b"127.0.0.1:8000")],
    }


async def wait_for(condition: Any) -> None:
    """Until ``condition()`` holds (state of the hub and the in-memory clients: nothing to await on), within WAIT."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - plain state, no event to wait on
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), WAIT)


async def one_bad_frame(impl: Any, frame: str | bytes) -> None:
    hub = backend_hub(impl)()
    endpoint = view_endpoint(chat.chat_view(hub), impl.WebSocket, OPTIONS)
    clients = {name: Client() for name in ("ana", "bob", "eve")}
    tasks = []
    for name, client in clients.items():  # one after the other: the room's order is ana, bob, eve
        websocket = StarletteWebSocket(scope(name), client.receive, client.send)
        tasks.append(asyncio.create_task(endpoint(websocket)))
        await wait_for(lambda: len(hub.members("lobby")) == len(tasks))
    ana, bob, eve = clients.values()
    members = hub.members("lobby")
    try:
        eve.say(frame)
        await wait_for(lambda: eve.closed is not None or eve.got_message.is_set())
        ana.got_message.clear()
        bob.got_message.clear()
        ana.say('{"text": "next"}')
        await wait_for(lambda: ana.got_message.is_set() and bob.got_message.is_set())
        for client in (ana, bob):
            assert client.closed is None
            assert client.received[-1]["text"] == "next"
        assert hub.members("lobby")[:2] == members[:2]  # ana and bob never left
        if eve.closed is None:
            assert hub.members("lobby") == members
        else:
            assert eve.closed in DOCUMENTED_CLOSES, f"closed with {eve.closed}"
        stats = hub.stats()
        assert (stats.lost, stats.send_errors) == (0, 0), stats
    finally:
        for client in clients.values():
            client.hang_up()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)


# Text with what JSON can escape but UTF-8 cannot carry (lone surrogates) and control characters.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates (Cs) included
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**4000)  # huge integers
    | st.floats()  # NaN and Infinity included
    | any_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text, children, max_size=5),
    max_leaves=15,
)


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    kind = draw(st.sampled_from(["chat", "chat+extra", "any-json", "deep", "raw-text", "raw-bytes", "binary-json"]))
    if kind == "chat":
        return json.dumps({"text": draw(any_text)})  # ensure_ascii: "\ud800" on the wire, valid JSON and UTF-8
    if kind == "chat+extra":
        return json.dumps({"text": draw(any_text), "extra": draw(json_values)})
    if kind == "any-json":
        return json.dumps(draw(json_values))  # NaN and Infinity as JSON's NaN-like tokens
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=20_000))
        return '{"text": "deep", "x": ' + "[" * depth + "]" * depth + "}"
    if kind == "raw-text":
        return draw(st.text(max_size=100))  # what a server can hand over: valid Unicode, no surrogates
    if kind == "raw-bytes":
        return draw(st.binary(max_size=100))
    return json.dumps({"text": draw(any_text)}).encode()


def test_one_clients_frame_harms_no_one_else(impl: Any) -> None:
    @settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(frame=frames())
    def check(frame: str | bytes) -> None:
        asyncio.run(one_bad_frame(impl, frame))

    check()


def test_the_reported_defect_is_among_the_cases(impl: Any) -> None:
    """The frame of the report, explicitly: valid JSON whose text is a lone surrogate."""
    asyncio.run(one_bad_frame(impl, '{"text": "\\ud800"}'))
