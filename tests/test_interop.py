"""The same behaviour on every ASGI server: a real-network interop matrix.

Five server setups, each run by the test in a subprocess on a socket it bound
on 127.0.0.1 (``servers.serve_process``): uvicorn with ``ws="websockets"``,
``"websockets-sansio"`` and ``"wsproto"``, Hypercorn, and Daphne. Every case
runs once per backend (``impl``: ``c`` and ``py``); the subprocess picks its
backend as a user does (``BOCADILLO_WS_NO_EXTENSIONS=1`` for the pure one)
and the fixture checks, through ``/info``, that it runs the one asked for.
The app is tests/interop_app.py; the client is the ``websockets`` library.

Where a server cannot do what the contract describes, the test asserts what
it really does, from the table ``QUIRKS`` (each entry says why, with the
server's code path); docs/servers.md summarises it.

Subprocesses rather than threads: an application error then reaches the
server's own handler (the behaviour under test), and the server formats its
traceback in its own process, not in a thread of pytest's (see
tests/test_server.py for why that matters on 3.11).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from subprocess import Popen
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect as sync_connect

from servers import NO_PROXY, serve_process

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # slow: every server, once (py313-cython-slow)

TIMEOUT = 10.0  # any single wait
START_TIMEOUT = 30.0  # a server's first answer (Daphne imports Twisted: ~2 s on a loaded 2-core VM)
SYNC_NO_PROXY: dict[str, Any] = {"proxy": None} if "proxy" in inspect.signature(sync_connect).parameters else {}

SERVERS = ["uvicorn-websockets", "uvicorn-websockets-sansio", "uvicorn-wsproto", "hypercorn", "daphne"]
BACKENDS = {"c": ("cython", "bocadillo_ws._codec"), "py": ("python", "bocadillo_ws._codec_py")}


@dataclass(frozen=True)
class Quirks:
    """Where a server departs from the ASGI spec or from the others (defaults: it does not)."""

    # Hypercorn puts both "text" and "bytes" in every websocket.receive event,
    # the unused one None (protocol/ws_stream.py, WebsocketBuffer.to_message).
    both_receive_keys: bool = False
    # Daphne sends nothing for websocket.send with "" or b"": it tests the
    # payload's truth (ws_protocol.py, handle_reply: `if message.get("text", None)`).
    drops_empty_messages: bool = False
    # Daphne ignores "headers" in websocket.accept (serverAccept takes the subprotocol only).
    drops_accept_headers: bool = False
    # Daphne ignores "reason" in websocket.close (serverClose(code=...)), and
    # puts none in websocket.disconnect.
    drops_close_reasons: bool = False
    # The code the app sees when the client closes with 4001: Hypercorn says
    # 1006 (abnormal) whatever the client sent, with no reason; 1000 only if
    # the app closed first (ws_stream.py, on StreamClosed).
    client_close_code: int | None = None  # None: the client's own code
    # The code of the server's reply to the client's close frame: Daphne
    # (autobahn, echoCloseCodeReason off) answers 1000 instead of echoing it.
    close_reply_code: int | None = None  # None: the client's own code
    # Daphne has no websocket.http.response extension (no "extensions" in
    # scope): send_denial_response raises, and the app's fallback, a close
    # before accept, is a 403.
    denial_response: bool = True
    # Daphne (autobahn's sendClose) accepts only 1000 and 3000-4999 from the
    # app: websocket.close with 1003/1007/1011 raises inside the server's
    # send. The app's exception then reaches Daphne, whose application
    # checker (once a second) sends 1011: so 1003 and 1007 arrive as 1011.
    protocol_close_codes: bool = True
    # The code in websocket.disconnect when the TCP connection drops with no
    # close frame: uvicorn's websockets-sansio and wsproto say 1005 "no status"
    # (connection_lost), the others 1006 "abnormal".
    lost_connection_code: int = 1006
    # A bare ASGI app (no bocadillo_ws) raising before accept: the HTTP status and body.
    error_before_accept: tuple[int, bytes] = (500, b"")
    # ... and after accept: the close code the client sees. uvicorn closes
    # the transport with no close frame (None; the client reports 1006);
    # Hypercorn closes with 1011 when the app's call ends while connected,
    # Daphne's application checker with 1011 within a second.
    error_after_accept_close: int | None = 1011
    # The server's own cap on an incoming message (its default; the app sees
    # nothing bigger): uvicorn's ws_max_size and Hypercorn's
    # websocket_max_message_size are 16 MiB, Daphne's
    # websocket_max_message_size (autobahn's maxMessagePayloadSize) 1 MiB.
    max_message_size: int = 16 * 1024 * 1024
    # Past that cap, (the close code the client gets, the code of the app's
    # websocket.disconnect). uvicorn's "websockets" and Hypercorn close with
    # 1009 but tell the app 1006; websockets-sansio and wsproto tell it 1009.
    # Daphne (autobahn, failByDrop) drops the TCP connection with no close
    # frame: the client sees 1006 (None here), the app 1006.
    over_cap_codes: tuple[int | None, int] = (1009, 1006)


UVICORN = Quirks(error_before_accept=(500, b"Internal Server Error"), error_after_accept_close=None)
QUIRKS = {
    "uvicorn-websockets": UVICORN,
    # websockets-sansio and wsproto report a lost connection as 1005 (no status received).
    "uvicorn-websockets-sansio": replace(UVICORN, lost_connection_code=1005, over_cap_codes=(1009, 1009)),
    "uvicorn-wsproto": replace(UVICORN, lost_connection_code=1005, over_cap_codes=(1009, 1009)),
    "hypercorn": Quirks(both_receive_keys=True, client_close_code=1006),
    "daphne": Quirks(
        max_message_size=1024 * 1024,
        over_cap_codes=(None, 1006),
        drops_empty_messages=True,
        drops_accept_headers=True,
        drops_close_reasons=True,
        close_reply_code=1000,
        denial_response=False,
        protocol_close_codes=False,
    ),
}


@dataclass
class Server:
    name: str
    base: str
    quirks: Quirks
    process: Popen[bytes]
    log: Path

    def url(self, path: str, **query: str) -> tuple[str, str]:
        """A fresh token and the URL that carries it."""
        token = uuid.uuid4().hex
        return token, f"{self.base}{path}?{urlencode({**query, 'token': token})}"

    async def report(self, token: str) -> dict[str, Any]:
        """What the application did for ``token``'s connection, once its call has ended."""
        async with client_for(f"{self.base}/report?of={token}") as client:
            record: dict[str, Any] = json.loads(await recv(client))
        assert "missing" not in record and "unfinished" not in record, (record, self.log_tail())
        return record

    def receive_event(self, kind: str) -> dict[str, str]:
        """The shape of the websocket.receive event the app gets for a ``kind`` frame (payloads as type names)."""
        event = {"type": "websocket.receive", kind: "str" if kind == "text" else "bytes"}
        if self.quirks.both_receive_keys:
            event["bytes" if kind == "text" else "text"] = "NoneType"
        return event

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def wait_ready(name: str, base: str, process: Popen[bytes], log: Path) -> dict[str, Any]:
    """The server's /info answer, once it answers (bounded); fails early if the process dies."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with sync_connect(f"{base}/info", open_timeout=2, close_timeout=2, **SYNC_NO_PROXY) as client:
                return json.loads(client.recv(timeout=TIMEOUT))  # type: ignore[no-any-return]
        except (OSError, TimeoutError, WebSocketException) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer in {START_TIMEOUT}s:\n{log.read_text()}") from exc
            time.sleep(0.05)


@pytest.fixture(scope="module", params=SERVERS)
def server_name(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def server(impl: Any, server_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("interop") / f"{server_name}-{impl}.log"
    with log.open("wb") as output, serve_process(server_name, pure=impl.tag == "py", log=output) as (base, process):
        info = wait_ready(server_name, base, process, log)
        # The subprocess runs the backend this leg is about, under the server asked for.
        assert (info["backend"], info["core"]) == BACKENDS[impl.tag], info
        assert info["server"] == server_name
        yield Server(server_name, base, QUIRKS[server_name], process, log)
        assert process.poll() is None, f"{server_name} died during the tests:\n{log.read_text()}"


@asynccontextmanager
async def client_for(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """A real client on loopback: no proxy, no keepalive pings, bounded handshakes."""
    async with connect(
        url, **NO_PROXY, ping_interval=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **kwargs
    ) as client:
        yield client


async def recv(client: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(client.recv(), TIMEOUT)


async def server_closes(client: ClientConnection) -> tuple[int | None, str | None]:
    """Receive until the connection ends: the code and reason of the server's close frame, (None, None) if none came."""
    with pytest.raises(ConnectionClosed) as info:
        await recv(client)
    await asyncio.wait_for(client.wait_closed(), TIMEOUT)
    if info.value.rcvd is None:
        assert client.close_code == 1006  # websockets' "closed abnormally"
        return None, None
    return info.value.rcvd.code, info.value.rcvd.reason


async def handshake_refused(url: str, **kwargs: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        async with client_for(url, **kwargs):
            pass  # pragma: no cover - the handshake must fail
    return info.value


# --------------------------------------------------------------------------- setup


async def test_server_runs_the_requested_backend(server: Server, impl: Any) -> None:
    """The fixture checks this before any test runs; here it is once more, through a fresh connection."""
    async with client_for(f"{server.base}/info") as client:
        info = json.loads(await recv(client))
    assert (info["backend"], info["core"], info["server"]) == (*BACKENDS[impl.tag], server.name)
    assert info["pid"] == server.process.pid


# --------------------------------------------------------------------------- messages both ways


async def test_text_both_ways(server: Server) -> None:
    payloads = ["héllo/wörld 🎉", "", "x" * 70_000, "\x00\u2028", ""]
    token, url = server.url("/echo/text")
    async with client_for(url) as client:
        for payload in payloads:
            await client.send(payload)
        await client.send("end")
        expected = [p for p in payloads if p or not server.quirks.drops_empty_messages] + ["end"]
        assert [await recv(client) for _ in expected] == expected
    record = await server.report(token)
    assert record["error"] is None
    # Every frame reached the app, empty ones included, in the server's event
    # shape, and the app sent every reply (Daphne drops the empty ones itself).
    frames = [event for event in record["received"] if event["type"] == "websocket.receive"]
    assert frames == [server.receive_event("text")] * (len(payloads) + 1)
    assert [event for event in record["sent"] if event["type"] == "websocket.send"] == [
        {"type": "websocket.send", "text": "str"}
    ] * (len(payloads) + 1)
    assert record["notes"] == [{"disconnect": [server.quirks.client_close_code or 1000, ""]}]


async def test_bytes_both_ways(server: Server) -> None:
    payloads = [b"\x00\xff", b"", bytes(range(256)), b"y" * 70_000, b""]
    token, url = server.url("/echo/bytes")
    async with client_for(url) as client:
        for payload in payloads:
            await client.send(payload)
        await client.send(b"end")
        expected = [p for p in payloads if p or not server.quirks.drops_empty_messages] + [b"end"]
        replies = [await recv(client) for _ in expected]
        assert all(isinstance(reply, bytes) for reply in replies)
        assert replies == expected
    record = await server.report(token)
    assert record["error"] is None
    frames = [event for event in record["received"] if event["type"] == "websocket.receive"]
    assert frames == [server.receive_event("bytes")] * (len(payloads) + 1)
    assert [event for event in record["sent"] if event["type"] == "websocket.send"] == [
        {"type": "websocket.send", "bytes": "bytes"}
    ] * (len(payloads) + 1)


async def test_json_both_ways(server: Server) -> None:
    """Text and binary JSON frames in, compact JSON text frames out (Starlette's wire text)."""
    values: list[Any] = [{"a": [1, "é/ü"], "n": None}, [], "", 2**70, {"deep": [[[{"x": 1.5}]]]}]
    token, url = server.url("/echo/json")
    async with client_for(url) as client:
        for i, value in enumerate(values):
            text = json.dumps(value)  # spaces and \u escapes: the compact echo is the server's own
            await client.send(text if i % 2 == 0 else text.encode())
        replies = [await recv(client) for _ in values]
    assert replies == [json.dumps(value, separators=(",", ":"), ensure_ascii=False) for value in values]
    record = await server.report(token)
    assert record["error"] is None
    frames = [event for event in record["received"] if event["type"] == "websocket.receive"]
    assert frames == [server.receive_event("text" if i % 2 == 0 else "bytes") for i in range(len(values))]


# --------------------------------------------------------------------------- handshake


async def test_subprotocol_negotiation(server: Server) -> None:
    token, url = server.url("/subprotocol", pick="chat")
    async with client_for(url, subprotocols=["superchat", "chat"]) as client:
        assert client.subprotocol == "chat"
        assert client.response.headers.get_all("Sec-WebSocket-Protocol") == ["chat"]
        assert json.loads(await recv(client)) == ["superchat", "chat"]  # scope["subprotocols"], in order
        await client.send("read")
        assert await server_closes(client) == (1000, "")
    accept = (await server.report(token))["sent"][0]
    assert (accept["type"], accept["subprotocol"]) == ("websocket.accept", "chat")

    # None offered, none picked: no header at all.
    _, url = server.url("/subprotocol")
    async with client_for(url) as client:
        assert client.subprotocol is None
        assert client.response.headers.get_all("Sec-WebSocket-Protocol") == []
        assert json.loads(await recv(client)) == []
        await client.send("read")
        assert await server_closes(client) == (1000, "")


async def test_accept_headers(server: Server) -> None:
    token, url = server.url("/accept-headers")
    async with client_for(url) as client:
        headers = client.response.headers
        assert await recv(client) == "accepted"
        await client.send("read")
        assert await server_closes(client) == (1000, "")
    if server.quirks.drops_accept_headers:
        assert (headers.get_all("x-interop"), headers.get_all("set-cookie")) == ([], [])
    else:
        assert (headers.get_all("x-interop"), headers.get_all("set-cookie")) == (["accepted"], ["flavour=bocadillo"])
    sent_headers = (await server.report(token))["sent"][0]["headers"]
    assert sent_headers == [["x-interop", "accepted"], ["set-cookie", "flavour=bocadillo"]]  # the app did send them


async def test_denial_response(server: Server) -> None:
    token, url = server.url("/deny")
    refused = await handshake_refused(url)
    record = await server.report(token)
    assert record["error"] is None
    if server.quirks.denial_response:
        assert refused.response.status_code == 401
        assert bytes(refused.response.body) == "denied ✗".encode()
        assert refused.response.headers["x-denied"] == "yes"
        assert record["notes"] == [{"denial": "sent", "state": "DISCONNECTED"}]
        assert [event["type"] for event in record["sent"]] == [
            "websocket.http.response.start",
            "websocket.http.response.body",
        ]
    else:
        # No extension: send_denial_response raises (as Starlette's does), and
        # the view's fallback, a close before accept, is an HTTP 403.
        assert refused.response.status_code == 403
        assert record["notes"] == [
            {"denial": "unsupported", "error": "The server doesn't support the Websocket Denial Response extension."}
        ]
        assert [event["type"] for event in record["sent"]] == ["websocket.close"]


# --------------------------------------------------------------------------- origin checks


@pytest.mark.parametrize("path", ["/origin/view", "/origin/helper", "/origin/middleware"])
async def test_origin_check(server: Server, path: str) -> None:
    """Cross-site WebSocket hijacking refused: another site's page gets a 403; the app's own page and a listed one chat."""
    same = "http://" + server.base.removeprefix("ws://")
    for origin in (same, "http://friend.example", None):
        token, url = server.url(path)
        async with client_for(url, origin=origin) as client:
            await client.send("hello")
            assert await recv(client) == "hello"
        record = await server.report(token)
        assert record["error"] is None
        assert record["sent"][0]["type"] == "websocket.accept"
    for origin in ("http://evil.example", "null", same.replace("http:", "https:"), "http://127.0.0.1:1"):
        token, url = server.url(path)
        refused = await handshake_refused(url, origin=origin)
        assert refused.response.status_code == 403
        record = await server.report(token)
        assert record["error"] is None
        assert "view ran" not in record["notes"]
        sent = [event["type"] for event in record["sent"]]
        if server.quirks.denial_response:
            assert bytes(refused.response.body) == b"Origin not allowed"
            assert sent == ["websocket.http.response.start", "websocket.http.response.body"]
        else:  # Daphne: a close before accept, which it answers with a 403
            assert [(event["type"], event["code"]) for event in record["sent"]] == [("websocket.close", 1008)]


# --------------------------------------------------------------------------- size limits


async def test_server_cap_acts_first(server: Server) -> None:
    """A message over the server's own cap never reaches the app: the server ends the connection itself.

    What the client and the app then see differs per server (``Quirks.over_cap_codes``).
    """
    cap = server.quirks.max_message_size
    token, url = server.url("/echo/bytes")
    async with client_for(url, max_size=None) as client:
        await client.send(b"x" * cap)  # at the cap: delivered
        assert await recv(client) == b"x" * cap
        await client.send(b"x" * (cap + 1))
        code, _ = await server_closes(client)
    client_code, app_code = server.quirks.over_cap_codes
    assert code == client_code
    record = await server.report(token)
    assert record["error"] is None
    frames = [event for event in record["received"] if event["type"] == "websocket.receive"]
    assert len(frames) == 1  # only the first message reached the app
    assert [note["disconnect"][0] for note in record["notes"]] == [app_code]


LIMIT = 64 * 1024  # interop_app.LIMIT


@pytest.mark.parametrize(
    ("path", "at_limit", "over_limit"),
    [
        pytest.param("/limits/size/bytes", b"x" * LIMIT, b"x" * (LIMIT + 1), id="bytes"),
        # Text is measured in UTF-8 bytes: LIMIT // 2 two-byte characters are exactly the limit.
        pytest.param("/limits/size/text", "é" * (LIMIT // 2), "é" * (LIMIT // 2) + "a", id="text-utf8"),
    ],
)
async def test_max_size_closes_with_1009(server: Server, path: str, at_limit: str | bytes, over_limit: str | bytes) -> None:
    token, url = server.url(path)
    async with client_for(url, max_size=None) as client:
        await client.send(at_limit)
        assert await recv(client) == at_limit
        await client.send(over_limit)
        received = await server_closes(client)
    record = await server.report(token)
    assert record["error"].split(":")[0] == "MessageTooBig"
    assert record["sent"][-1]["type"] == "websocket.close"
    assert record["sent"][-1]["code"] == 1009
    # Daphne refuses 1009 from the app and sends 1011 itself.
    assert received[0] == (1009 if server.quirks.protocol_close_codes else 1011)


async def test_flooding_client_gets_1008(server: Server) -> None:
    """max_rate=0.5, max_burst=3: back-to-back messages get 3 echoes, then close 1008.

    Each message waits for its echo: nothing is in flight when the server
    closes, so no server resets the connection over unread data (which would
    lose the close frame).
    """
    token, url = server.url("/limits/rate")
    async with client_for(url) as client:
        for i in range(3):
            await client.send(f"m{i}")
            assert await recv(client) == f"m{i}"
        await client.send("m3")  # a 4th within 2 s: over the bucket
        received = await server_closes(client)
    assert received == ((1008 if server.quirks.protocol_close_codes else 1011), "")
    record = await server.report(token)
    assert record["error"].split(":")[0] == "RateLimited"
    assert record["sent"][-1] == {"type": "websocket.close", "code": 1008, "reason": ""}


# --------------------------------------------------------------------------- close codes and reasons


async def test_server_closes_with_code_and_reason(server: Server) -> None:
    token, url = server.url("/server-close")
    async with client_for(url) as client:
        assert await recv(client) == "closing"
        code, reason = await server_closes(client)
    assert code == 4001
    assert reason == ("" if server.quirks.drops_close_reasons else "server bye ✓")
    assert (await server.report(token))["sent"][-1] == {
        "type": "websocket.close",
        "code": 4001,
        "reason": "server bye ✓",
    }


async def test_client_closes_with_code_and_reason(server: Server) -> None:
    """The app sees the client's code and reason as WebSocketDisconnect.code / .reason, where the server passes them."""
    token, url = server.url("/echo/text")
    async with client_for(url) as client:
        await client.send("hello")
        assert await recv(client) == "hello"
        await asyncio.wait_for(client.close(4001, "client bye ✓"), TIMEOUT)
    assert client.close_code == (server.quirks.close_reply_code or 4001)  # the code of the server's reply
    record = await server.report(token)
    assert record["error"] is None
    code = server.quirks.client_close_code or 4001
    reason = "" if server.quirks.drops_close_reasons or server.quirks.client_close_code else "client bye ✓"
    assert record["notes"] == [{"disconnect": [code, reason]}]
    assert record["sent"][-1]["type"] == "websocket.send"  # nothing sent after the disconnect


@pytest.mark.parametrize(
    ("path", "frame", "code", "error"),
    [
        pytest.param("/echo/text", b"binary", 1003, "UnexpectedMessageType", id="binary-to-text-1003"),
        pytest.param("/echo/bytes", "text", 1003, "UnexpectedMessageType", id="text-to-bytes-1003"),
        pytest.param("/echo/json", "{not json", 1007, "InvalidJSON", id="invalid-json-1007"),
        pytest.param("/echo/json", b"\xff\xfe{}", 1007, "InvalidJSON", id="binary-not-utf8-1007"),
        pytest.param("/raises", "go", 1011, "RuntimeError", id="view-raises-1011"),
    ],
)
async def test_contract_close_codes(server: Server, path: str, frame: str | bytes, code: int, error: str) -> None:
    token, url = server.url(path)
    async with client_for(url) as client:
        await client.send(frame)
        received = await server_closes(client)
    record = await server.report(token)
    # The app closed with the contract's code, then re-raised to the server.
    assert record["sent"][-1] == {"type": "websocket.close", "code": code, "reason": ""}
    assert record["error"].split(":")[0] == error
    # Daphne refuses 1003/1007/1011 from the app and sends 1011 itself.
    assert received == ((code if server.quirks.protocol_close_codes else 1011), "")


async def test_view_raising_before_accept_is_a_403(server: Server) -> None:
    """websocket_view closes before accept (a 403 on every server), then re-raises."""
    token, url = server.url("/raises-before-accept")
    refused = await handshake_refused(url)
    assert refused.response.status_code == 403
    record = await server.report(token)
    assert record["sent"] == [{"type": "websocket.close", "code": 1011, "reason": ""}]
    assert record["error"] == "RuntimeError: boom before accept"


async def test_bare_asgi_error_before_accept(server: Server) -> None:
    """What the server itself does when an app raises before accept (websocket_view would have closed: a 403)."""
    token, url = server.url("/raw/raise-before-accept")
    refused = await handshake_refused(url)
    assert (refused.response.status_code, bytes(refused.response.body)) == server.quirks.error_before_accept
    assert (await server.report(token))["error"] == "RuntimeError: raw boom before accept"


async def test_bare_asgi_error_after_accept(server: Server) -> None:
    """... and after accept: uvicorn drops the TCP connection with no close frame; the others send 1011."""
    token, url = server.url("/raw/raise-after-accept")
    async with client_for(url) as client:
        assert await recv(client) == "accepted"
        closed = await server_closes(client)
    expected = server.quirks.error_after_accept_close
    assert closed == ((None, None) if expected is None else (expected, ""))
    assert (await server.report(token))["error"] == "RuntimeError: raw boom after accept"


# --------------------------------------------------------------------------- transport


async def test_client_ping_is_answered(server: Server) -> None:
    """Control frames are the server's: a ping gets its pong, and the app sees no event for it."""
    token, url = server.url("/echo/text")
    async with client_for(url) as client:
        pong = await client.ping(b"interop")
        latency = await asyncio.wait_for(pong, TIMEOUT)
        assert latency >= 0
        await client.send("after the ping")
        assert await recv(client) == "after the ping"
    frames = [event for event in (await server.report(token))["received"] if event["type"] == "websocket.receive"]
    assert frames == [server.receive_event("text")]


async def test_lost_connection_ends_the_view(server: Server) -> None:
    """A TCP close with no close frame: the view ends through WebSocketDisconnect, and nothing is sent after it."""
    token, url = server.url("/echo/text")
    async with client_for(url) as client:
        await client.send("ping")
        assert await recv(client) == "ping"
        client.transport.abort()
    record = await server.report(token)
    assert record["error"] is None
    assert record["notes"] == [{"disconnect": [server.quirks.lost_connection_code, ""]}]
    assert record["sent"][-1]["type"] == "websocket.send"
