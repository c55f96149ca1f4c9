"""Two demo processes (``demo/chat.py --redis``) on two ports share rooms through a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from redis_server import RedisServer, free_port, redis_server
from servers import NO_PROXY

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

DEMO = Path(__file__).resolve().parents[1] / "demo" / "chat.py"
ARRIVES = 10.0
ABSENT = 0.3
MESSAGES = 1000


@contextlib.contextmanager
def demo_process(redis_url: str) -> Iterator[str]:
    """``python demo/chat.py --port P --redis URL``; yields ``ws://127.0.0.1:P``; stopped by PID."""
    port = free_port()
    argv = [sys.executable, str(DEMO), "--port", str(port), "--redis", redis_url]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"demo exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("demo did not start") from None
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def receive(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), ARRIVES))


def client(base: str, room: str, name: str) -> Any:
    return connect(f"{base}/ws/{room}?name={name}", open_timeout=ARRIVES, close_timeout=ARRIVES, **NO_PROXY)


async def test_two_demo_processes_share_rooms(redis: RedisServer) -> None:
    with demo_process(redis.url) as one, demo_process(redis.url) as two:
        async with client(one, "lobby", "ana") as ana:
            assert await receive(ana) == {"type": "join", "room": "lobby", "name": "ana"}
            async with client(two, "lobby", "bob") as bob, client(two, "kitchen", "cy") as cy:
                first = await receive(bob)
                if first == {"type": "join", "room": "lobby", "name": "ana"}:
                    first = await receive(bob)  # ana's notice reached Redis after bob's room was subscribed
                assert first == {"type": "join", "room": "lobby", "name": "bob"}
                assert await receive(ana) == {"type": "join", "room": "lobby", "name": "bob"}  # through Redis
                assert await receive(cy) == {"type": "join", "room": "kitchen", "name": "cy"}

                async def say() -> None:
                    for seq in range(MESSAGES):
                        await ana.send(json.dumps({"text": str(seq)}))

                sender = asyncio.create_task(say())
                for who in (bob, ana):
                    texts = [(await receive(who))["text"] for _ in range(MESSAGES)]
                    assert texts == [str(seq) for seq in range(MESSAGES)]  # all, once, in order
                await sender
                await send_and_check(bob, ana)
                with pytest.raises(asyncio.TimeoutError):  # no doubles, and nothing for the kitchen
                    await asyncio.wait_for(bob.recv(), ABSENT)
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(cy.recv(), ABSENT)
            assert await receive(ana) == {"type": "leave", "room": "lobby", "name": "bob"}


async def send_and_check(sender: ClientConnection, other: ClientConnection) -> None:
    await sender.send(json.dumps({"text": "back"}))
    for who in (sender, other):
        event = await receive(who)
        assert (event["type"], event["name"], event["text"]) == ("message", "bob", "back")
