"""Two demo processes (``demo/chat.py --redis``) on two ports share rooms through a real redis-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from hub_helpers import demo_process
from redis_server import RedisServer, redis_server
from servers import NO_PROXY

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

ARRIVES = 10.0
ABSENT = 0.3
MESSAGES = 1000


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


async def test_workers_share_rooms(redis: RedisServer) -> None:
    with demo_process(redis.url, "--workers", "2") as base:
        clients = [await client(base, "lobby", f"u{i}").__aenter__() for i in range(8)]
        try:
            for i, ws in enumerate(clients):  # its own join notice: its worker has subscribed the room
                while await receive(ws) != {"type": "join", "room": "lobby", "name": f"u{i}"}:
                    pass
            # Both workers run a hub on Redis (their connections carry their pid).
            for _ in range(500):
                names = {c.get("name") for c in redis.clients() if c.get("name", "").startswith("bocadillo_ws-hub-")}
                if len(names) == 2:
                    break
                await asyncio.sleep(0.02)
            assert len(names) == 2, names
            await clients[0].send(json.dumps({"text": "to everyone"}))
            for ws in clients:
                while (event := await receive(ws))["type"] != "message":
                    pass
                assert event["text"] == "to everyone"
        finally:
            for ws in clients:
                await ws.close()
