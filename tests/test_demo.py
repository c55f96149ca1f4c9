"""The chat demo (``demo/chat.py``): rooms, broadcasts, validation, the page.

Everything runs on 127.0.0.1 through a real uvicorn server (``servers.serve``)
and real ``websockets`` clients. Rooms shared through Redis by two demo
processes: tests/test_demo_redis.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import bocadillo_ws
from hub_helpers import load_demo
from servers import serve

pytestmark = pytest.mark.anyio


# Bounds for every network wait: generous for what must arrive, short for
# proving that something does not.
ARRIVES = 5.0
ABSENT = 0.3


chat = load_demo()


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def base_url() -> Any:
    with serve(chat.create_app()) as url:
        yield url


@asynccontextmanager
async def client(base_url: str, room: str, name: str | None = None) -> AsyncIterator[ClientConnection]:
    url = f"{base_url}/ws/{room}" + ("" if name is None else f"?name={name}")
    async with connect(url, open_timeout=ARRIVES, close_timeout=ARRIVES) as ws:
        yield ws


async def receive(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), ARRIVES))


async def send(ws: ClientConnection, message: Any) -> None:
    await ws.send(json.dumps(message))


async def assert_nothing_arrives(ws: ClientConnection) -> None:
    # Cancelling recv() is safe in websockets: nothing is lost.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), ABSENT)


async def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes the connection; the code the client saw."""

    async def drain() -> None:
        while True:
            await ws.recv()

    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(drain(), ARRIVES)
    return ws.close_code


def join(room: str, name: str) -> dict[str, str]:
    return {"type": "join", "room": room, "name": name}


def leave(room: str, name: str) -> dict[str, str]:
    return {"type": "leave", "room": room, "name": name}


# --------------------------------------------------------------------------- rooms


async def test_two_clients_in_a_room_see_each_other(base_url: str) -> None:
    async with client(base_url, "lobby", "ana") as ana:
        assert await receive(ana) == join("lobby", "ana")  # ana is in: now bob can come
        async with client(base_url, "lobby", "bob") as bob:
            assert await receive(bob) == join("lobby", "bob")
            assert await receive(ana) == join("lobby", "bob")

            await send(ana, {"text": "hi bob"})
            for ws in (ana, bob):  # the sender gets its own message too
                event = await receive(ws)
                assert isinstance(event.pop("ts"), float)
                assert event == {"type": "message", "room": "lobby", "name": "ana", "text": "hi bob"}

            await send(bob, {"text": "hi ana ☕ / \"quoted\""})
            for ws in (ana, bob):
                event = await receive(ws)
                assert (event["name"], event["text"]) == ("bob", "hi ana ☕ / \"quoted\"")

        assert await receive(ana) == leave("lobby", "bob")
        await assert_nothing_arrives(ana)


async def test_another_room_sees_nothing(base_url: str) -> None:
    async with client(base_url, "lobby", "ana") as ana, client(base_url, "kitchen", "cy") as cy:
        assert await receive(ana) == join("lobby", "ana")
        assert await receive(cy) == join("kitchen", "cy")

        await send(ana, {"text": "lobby only"})
        assert (await receive(ana))["text"] == "lobby only"  # delivered by now...
        await assert_nothing_arrives(cy)  # ...and not to the kitchen

        await send(cy, {"text": "kitchen only"})
        assert (await receive(cy))["text"] == "kitchen only"
        await assert_nothing_arrives(ana)


async def test_name_defaults_and_rooms_empty_out() -> None:
    app = chat.create_app()
    with serve(app) as url:
        async with client(url, "lobby") as anon:
            assert await receive(anon) == join("lobby", "anonymous")
            assert app.state.rooms.rooms() == ["lobby"]
        for _ in range(100):  # the server notices the close shortly after the client
            if not app.state.rooms.rooms():
                break
            await asyncio.sleep(0.01)
        assert app.state.rooms.rooms() == []


def test_apps_do_not_share_rooms() -> None:
    first, second = chat.create_app(), chat.create_app()
    assert first.state.rooms is not second.state.rooms


# --------------------------------------------------------------------------- validation


BAD_MESSAGES = [
    pytest.param("not json", 1007, id="not-json"),
    pytest.param(b"\xff\xfe", 1007, id="binary-not-utf8"),
    pytest.param("[1, 2]", 1008, id="not-an-object"),
    pytest.param('"hello"', 1008, id="a-string"),
    pytest.param("{}", 1008, id="no-text"),
    pytest.param('{"text": 5}', 1008, id="text-not-a-string"),
    pytest.param('{"text": null}', 1008, id="text-null"),
    pytest.param(json.dumps({"text": "x" * (chat.MAX_TEXT + 1)}), 1008, id="text-too-long"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_MESSAGES)
async def test_bad_message_closes_with_documented_code(base_url: str, frame: str | bytes, code: int) -> None:
    async with client(base_url, "lobby", "ana") as ana:
        assert await receive(ana) == join("lobby", "ana")
        await ana.send(frame)
        assert await close_code(ana) == code


async def test_an_unsendable_text_closes_only_its_sender_with_1007(base_url: str) -> None:
    """Issue 18: valid JSON with a lone surrogate ("\\ud800") made every member's send fail and emptied the room."""
    async with client(base_url, "lobby", "ana") as ana:
        assert await receive(ana) == join("lobby", "ana")
        async with client(base_url, "lobby", "eve") as eve:
            assert await receive(eve) == join("lobby", "eve")
            assert await receive(ana) == join("lobby", "eve")
            await eve.send('{"text": "\\ud800"}')
            assert await close_code(eve) == 1007
        assert await receive(ana) == leave("lobby", "eve")
        await send(ana, {"text": "still here"})
        assert (await receive(ana))["text"] == "still here"


async def test_bad_message_only_ends_its_sender(base_url: str) -> None:
    async with client(base_url, "lobby", "ana") as ana:
        assert await receive(ana) == join("lobby", "ana")
        async with client(base_url, "lobby", "eve") as eve:
            assert await receive(eve) == join("lobby", "eve")
            assert await receive(ana) == join("lobby", "eve")
            await send(eve, {"nope": True})
            assert await close_code(eve) == 1008
        assert await receive(ana) == leave("lobby", "eve")
        await send(ana, {"text": "still here"})
        assert (await receive(ana))["text"] == "still here"


async def test_limits_are_inclusive_and_binary_json_works(base_url: str) -> None:
    async with client(base_url, "lobby", "ana") as ana:
        assert await receive(ana) == join("lobby", "ana")
        longest = "é" * chat.MAX_TEXT  # characters, not bytes
        await send(ana, {"text": longest, "extra": "ignored"})
        assert (await receive(ana))["text"] == longest
        await ana.send(json.dumps({"text": "as bytes"}).encode())
        assert (await receive(ana))["text"] == "as bytes"


async def test_too_long_name_or_room_is_refused(base_url: str) -> None:
    async with client(base_url, "lobby", "n" * (chat.MAX_NAME + 1)) as ws:
        assert await close_code(ws) == 1008
    async with client(base_url, "r" * (chat.MAX_ROOM + 1), "ana") as ws:
        assert await close_code(ws) == 1008


# --------------------------------------------------------------------------- delivery


async def test_a_vanished_client_does_not_break_a_broadcast(base_url: str) -> None:
    async with client(base_url, "lobby", "ana") as ana, client(base_url, "lobby", "bob") as bob:
        assert await receive(ana) == join("lobby", "ana")
        assert await receive(ana) == join("lobby", "bob")
        assert await receive(bob) == join("lobby", "bob")
        async with client(base_url, "lobby", "ghost") as ghost:
            for ws in (ana, bob, ghost):
                assert await receive(ws) == join("lobby", "ghost")
            ghost.transport.abort()  # gone without a closing handshake
            for ws in (ana, bob):
                assert await receive(ws) == leave("lobby", "ghost")
        await send(ana, {"text": "still here"})
        for ws in (ana, bob):
            assert (await receive(ws))["text"] == "still here"
        await assert_nothing_arrives(ana)


def test_apps_use_a_hub_in_memory_by_default() -> None:
    app = chat.create_app()
    assert isinstance(app.state.hub, bocadillo_ws.Hub) and app.state.hub.url is None


# --------------------------------------------------------------------------- page and script


def test_page_is_served() -> None:
    with TestClient(chat.create_app(), base_url="http://localhost") as http:
        response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "new WebSocket(" in response.text
    assert "/ws/" in response.text


def test_main_prints_the_backend_and_runs_uvicorn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    chat.main(["--port", "8765"])
    out = capsys.readouterr().out
    assert f"backend: {bocadillo_ws.BACKEND}" in out
    assert "http://127.0.0.1:8765/" in out
    [call] = calls
    assert (call["host"], call["port"]) == ("127.0.0.1", 8765)
    assert call["app"].state.rooms.rooms() == []
    assert call["app"].state.hub.url is None


def test_main_shares_rooms_through_redis_with_workers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    monkeypatch.setenv(chat.REDIS_VARIABLE, "")  # restored (removed) after the test: main() sets it
    url = "redis://127.0.0.1:6399/0"
    chat.main(["--port", "8765", "--redis", url])
    assert calls[-1]["app"].state.hub.url == url
    chat.main(["--port", "8765", "--redis", url, "--workers", "3"])
    assert (calls[-1]["app"], calls[-1]["workers"], calls[-1]["factory"]) == ("chat:app_from_environment", 3, True)
    assert chat.app_from_environment().state.hub.url == url
    assert "shared through redis://127.0.0.1:6399/0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        chat.main(["--workers", "2"])


# --------------------------------------------------------------------------- origins


async def handshake_status(url: str, origin: str | None) -> int:
    """101 if the handshake succeeds, else the HTTP status the client got."""
    try:
        async with connect(url, origin=origin, open_timeout=ARRIVES, close_timeout=ARRIVES) as ws:
            assert (await receive(ws))["type"] == "join"
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_cross_origin_handshake_is_refused() -> None:
    """Cross-Site WebSocket Hijacking: another site's page gets a 403 and never joins; the own page, a listed origin and a non-browser client do."""
    app = chat.create_app(allowed_origins=["https://*.friend.example"])
    with serve(app) as base_url:
        own = "http://" + base_url.removeprefix("ws://")
        url = f"{base_url}/ws/lobby?name=mallory"
        assert await handshake_status(url, "http://evil.example") == 403
        assert await handshake_status(url, "null") == 403
        assert await handshake_status(url, "https://friend.example") == 403  # the domain itself is not listed
        assert app.state.rooms.rooms() == []  # mallory never joined
        assert await handshake_status(url, own) == 101
        assert await handshake_status(url, "https://chat.friend.example") == 101
        assert await handshake_status(url, None) == 101


def test_main_allow_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    chat.main(["--allow-origin", "http://one.example", "--allow-origin", "http://two.example:8080"])
    with TestClient(apps[0], base_url="http://localhost") as http:
        for origin in ("http://localhost", "http://one.example", "http://two.example:8080"):
            with http.websocket_connect("ws://localhost/ws/lobby", headers={"origin": origin}) as ws:
                assert ws.receive_json()["type"] == "join"
        with pytest.raises(WebSocketDenialResponse) as refused:
            with http.websocket_connect("ws://localhost/ws/lobby", headers={"origin": "http://two.example"}):
                pass  # pragma: no cover
    assert refused.value.status_code == 403


def test_workers_get_the_origins_and_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """--workers builds each worker's app from the environment: the origins and the rate go through it too."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    for variable in (chat.REDIS_VARIABLE, chat.ORIGINS_VARIABLE, chat.MAX_RATE_VARIABLE, chat.HOSTS_VARIABLE):
        monkeypatch.setenv(variable, "")  # restored (removed) after the test: main() sets them
    argv = ["--redis", "redis://127.0.0.1:6399/0", "--workers", "2", "--allow-origin", "http://one.example"]
    chat.main([*argv, "--allow-origin", "http://two.example", "--max-rate", "0.5", "--allow-host", "chat.example"])
    assert chat.os.environ[chat.ORIGINS_VARIABLE] == "http://one.example http://two.example"
    assert chat.os.environ[chat.HOSTS_VARIABLE] == "127.0.0.1 localhost chat.example"
    with TestClient(chat.app_from_environment(), base_url="http://chat.example") as http:
        assert http.get("/").status_code == 200
    assert float(chat.os.environ[chat.MAX_RATE_VARIABLE]) == 0.5
    chat.main(argv)
    assert chat.os.environ[chat.MAX_RATE_VARIABLE] == ""
    assert chat.app_from_environment().state.hub.url == "redis://127.0.0.1:6399/0"


# --------------------------------------------------------------------------- hosts (DNS rebinding)


def http_status(base_url: str, request_line: str, *headers: str) -> int:
    """The status a request gets over a raw socket (so that ``Host`` is whatever the test says)."""
    ip, port = base_url.removeprefix("ws://").split(":")
    with socket.create_connection((ip, int(port)), timeout=ARRIVES) as sock:
        sock.sendall("\r\n".join([request_line, *headers, "", ""]).encode())
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1])


def upgrade_status(base_url: str, host: str, origin: str) -> int:
    """The HTTP status of a WebSocket handshake sent with this ``Host`` and ``Origin``."""
    upgrade = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
               "Sec-WebSocket-Version: 13"]
    return http_status(base_url, "GET /ws/lobby?name=mallory HTTP/1.1", f"Host: {host}", f"Origin: {origin}", *upgrade)


def page_status(base_url: str, host: str) -> int:
    return http_status(base_url, "GET / HTTP/1.1", f"Host: {host}", "Connection: close")


def test_a_rebinding_host_is_refused() -> None:
    """A DNS-rebinding page names its own host, and its origin matches it: the Host check refuses both requests."""
    app = chat.create_app()
    with serve(app) as base_url:
        port = base_url.rsplit(":", 1)[1]
        evil = f"attacker.test:{port}"
        assert upgrade_status(base_url, evil, f"http://{evil}") == 400
        assert page_status(base_url, evil) == 400
        assert app.state.rooms.rooms() == []
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            assert upgrade_status(base_url, host, f"http://{host}") == 101
            assert page_status(base_url, host) == 200


def test_main_serves_its_own_host_and_the_allowed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    chat.main(["--host", "10.1.2.3", "--allow-host", "chat.example", "--allow-host", "*.rooms.example"])
    chat.main(["--host", "0.0.0.0"])
    for url, status in [
        ("http://localhost", 200),
        ("http://10.1.2.3", 200),
        ("http://chat.example", 200),
        ("http://a.rooms.example", 200),
        ("http://other.example", 400),
    ]:
        with TestClient(apps[0], base_url=url) as http:
            assert http.get("/").status_code == status, url
    with TestClient(apps[1], base_url="http://0.0.0.0") as http:
        assert http.get("/").status_code == 400  # a wildcard address names no host


# --------------------------------------------------------------------------- limits


async def test_message_over_64_kib_closes_with_1009(base_url: str) -> None:
    async with client(base_url, "lobby", "ana") as ana:
        assert await receive(ana) == join("lobby", "ana")
        # At the limit: a valid frame of exactly 64 KiB (too long a "text" for the chat: 1008 would follow,
        # so pad with an ignored key instead).
        padding = chat.MAX_MESSAGE - len(json.dumps({"text": "hi", "pad": ""}))
        await ana.send(json.dumps({"text": "hi", "pad": "x" * padding}))
        assert (await receive(ana))["text"] == "hi"
        await ana.send(json.dumps({"text": "hi", "pad": "x" * (padding + 1)}))
        assert await close_code(ana) == 1009


async def test_flooding_client_closes_with_1008_when_max_rate_is_set() -> None:
    with serve(chat.create_app(max_rate=0.5)) as base_url:  # burst 1, then one message every 2 s
        async with client(base_url, "lobby", "ana") as ana, client(base_url, "lobby", "bob") as bob:
            assert await receive(ana) == join("lobby", "ana")
            assert await receive(bob) == join("lobby", "bob")
            assert await receive(ana) == join("lobby", "bob")
            await send(ana, {"text": "flood 0"})
            assert (await receive(ana))["text"] == "flood 0"  # one at a time: nothing in flight at the close
            await send(ana, {"text": "flood 1"})  # a 2nd within 2 s: over the bucket
            assert (await receive(bob))["text"] == "flood 0"
            assert await close_code(ana) == 1008
            assert await receive(bob) == leave("lobby", "ana")  # bob stays, and hears ana leave
            await assert_nothing_arrives(bob)


async def test_no_rate_limit_by_default(base_url: str) -> None:
    async with client(base_url, "lobby", "ana") as ana:
        assert await receive(ana) == join("lobby", "ana")
        for i in range(200):
            await send(ana, {"text": f"m{i}"})
        assert [(await receive(ana))["text"] for _ in range(200)] == [f"m{i}" for i in range(200)]


def test_main_max_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    chat.main(["--max-rate", "0.5"])
    with TestClient(apps[0]) as http, http.websocket_connect("ws://localhost/ws/lobby") as ws:
        assert ws.receive_json()["type"] == "join"
        ws.send_json({"text": "one"})
        assert ws.receive_json()["text"] == "one"
        ws.send_json({"text": "two"})
        with pytest.raises(bocadillo_ws.WebSocketDisconnect) as closed:
            ws.receive_json()  # the leave notice goes to the others; ana is closed
    assert closed.value.code == 1008
