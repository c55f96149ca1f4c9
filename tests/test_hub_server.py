"""The Hub under a real uvicorn: a client that stops reading is closed with 1013, the others get everything.

Runs on the live backend (the pure tox envs run it pure). The stalled client is a raw TCP socket that completes the WebSocket
handshake and then never reads, with a small receive buffer: the kernel's
buffers fill, uvicorn pauses the transport, and the member's send suspends
for good, as with a real slow client. Publishing happens in the server's
event loop (uvicorn runs in a thread): a third client asks for it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect

import bocadillo_ws
from bocadillo_ws import Hub
from servers import NO_PROXY, serve

pytestmark = pytest.mark.anyio

MESSAGES = 200
SIZE = 32 * 1024  # 6.4 MB in all: far more than the stalled client's buffers


def make_app(hub: Hub) -> Starlette:
    async def member(websocket: Any) -> None:
        ws = bocadillo_ws.WebSocket.from_starlette(websocket)
        async with ws, hub.join("room", ws):
            async for _ in ws:
                pass

    async def publisher(websocket: Any) -> None:
        ws = bocadillo_ws.WebSocket.from_starlette(websocket, value_type="json")
        async with ws:
            async for order in ws:
                delivered = 0
                for seq in range(order["n"]):
                    delivered += await hub.publish_text("room", f"{seq}:" + "x" * order["size"])
                for _ in range(500):  # the slow member is closed after its writer is cancelled
                    if hub.stats().closed_for_overflow:
                        break
                    await asyncio.sleep(0.01)
                stats = hub.stats()
                await ws.send({"delivered": delivered, "closed": stats.closed_for_overflow, "members": stats.members})

    return Starlette(routes=[WebSocketRoute("/member", member), WebSocketRoute("/publish", publisher)])


def stalled_client(base: str) -> socket.socket:
    """Handshake on a raw socket, then never read again."""
    host, port = base.removeprefix("ws://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /member HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    sock.settimeout(5)
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: nothing after the headers is read
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def test_a_client_that_stops_reading_is_closed_and_the_others_get_everything() -> None:
    hub = Hub(max_queue=8)
    with serve(make_app(hub)) as base:
        stalled = stalled_client(base)
        try:
            async with connect(f"{base}/member", max_size=None, **NO_PROXY) as healthy, connect(
                f"{base}/publish", **NO_PROXY
            ) as control:
                for _ in range(500):  # both joined (the server's loop runs in its thread)
                    if hub.stats().members == 2:
                        break
                    await asyncio.sleep(0.01)
                await control.send(json.dumps({"n": MESSAGES, "size": SIZE}))
                received = []
                for _ in range(MESSAGES):
                    received.append(int((await asyncio.wait_for(healthy.recv(), 30)).split(":")[0]))
                assert received == list(range(MESSAGES))
                report = json.loads(await asyncio.wait_for(control.recv(), 30))
                assert report["closed"] == 1 and report["members"] == 1, report
                stats = hub.stats()
                assert stats.dropped >= 1 and stats.closed_for_overflow == 1
        finally:
            stalled.close()
