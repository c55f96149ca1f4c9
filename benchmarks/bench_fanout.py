"""Fan-out: one message to every member of a room, µs per recipient; and the Hub through Redis.

    python benchmarks/bench_fanout.py [--quick] [--members 1000] [--repeats R] [--redis URL | --no-redis]
                                      [--json OUT]

In process (no event loop: the in-memory server ``send`` never suspends, so
each broadcast is a coroutine driven by one ``send(None)``), for a ~100-byte
chat message to ``--members`` members:

- ``starlette``: Starlette's ``for ws in room: await ws.send_json(m)``;
- ``floor``: encode once, then each server ``send`` with a new event dict;
- ``hub[pure]`` / ``hub[compiled]``: ``Hub.publish`` with each backend's
  ``fan_out`` on that backend's ``WebSocket``;
- in an event loop, the hub with one member whose send never completes
  against the same room without it: the others' µs per recipient (paired).

Each repeat times every variant once, in a rotating order; the figures are
medians over repeats, and the ratios are medians of the per-repeat ratios
(paired: machine noise hits both sides of a ratio alike).

Through Redis (a ``redis-server`` started here on a free port unless
``--redis URL``; ``--no-redis`` skips): two hubs in one process, one
publishing at 1,000 msg/s and one member on the other recording
publish→receive latency (p50/p99); and the messages/s one hub drains when a
plain client floods its room with pipelined publishes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from statistics import median
from typing import Any

import _common as common

SCOPE: dict[str, Any] = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}


def drive(coroutine: Any) -> Any:
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("suspended: the in-memory transport must never wait")


def connected_pair() -> tuple[Any, Any]:
    """An in-memory server side: (receive, send) that never suspend."""

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(event: dict[str, Any]) -> None:
        return None

    return receive, send


# --------------------------------------------------------------------------- in process


def variants(members: int) -> dict[str, Callable[[Any], Any]]:
    """name -> coroutine function broadcasting one message to ``members`` connections."""
    import ujson
    from starlette.websockets import WebSocket as StarletteWebSocket

    import bocadillo_ws
    from bocadillo_ws import Hub, _codec_py
    from bocadillo_ws._websocket import WebSocketAPI

    out: dict[str, Callable[[Any], Any]] = {}

    room = []
    for _ in range(members):
        receive, send = connected_pair()
        ws = StarletteWebSocket(dict(SCOPE), receive, send)
        drive(ws.accept())
        room.append(ws)

    async def starlette(message: Any) -> None:
        for ws in room:
            await ws.send_json(message)

    out["starlette"] = starlette

    sends = [connected_pair()[1] for _ in range(members)]

    async def floor(message: Any) -> None:
        text = ujson.dumps(message, ensure_ascii=False, escape_forward_slashes=False)
        for send in sends:
            await send({"type": "websocket.send", "text": text})

    out["floor"] = floor

    backends: list[tuple[str, Any]] = [("pure", _codec_py)]
    try:
        from bocadillo_ws import _codec

        backends.append(("compiled", _codec))
    except ImportError:
        print("!! the compiled backend is not built: hub[compiled] skipped", file=sys.stderr)
    for name, module in backends:
        if module.WebSocketCore is bocadillo_ws._backend.WebSocketCore:
            cls: Any = bocadillo_ws.WebSocket
        else:
            cls = type("WebSocket", (WebSocketAPI, module.WebSocketCore, StarletteWebSocket), {})
        hub = type("BenchHub", (Hub,), {"_fan_out": staticmethod(module.fan_out)})()
        memberships = []  # kept: a membership leaves the room when it is collected
        for _ in range(members):
            receive, send = connected_pair()
            ws = cls(dict(SCOPE), receive, send)
            drive(ws.accept())
            membership = hub.join("lobby", ws)
            drive(membership.__aenter__())
            memberships.append(membership)
        hub.memberships = memberships  # type: ignore[attr-defined]

        async def publish(message: Any, hub: Any = hub) -> None:
            delivered = await hub.publish("lobby", message)
            assert delivered == members

        out[f"hub[{name}]"] = publish
    return out


def in_process(members: int, repeats: int, broadcasts: int) -> dict[str, Any]:
    message = common.chat_message()
    funcs = variants(members)
    names = list(funcs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            func = funcs[name]
            start = time.perf_counter_ns()
            for _ in range(broadcasts):
                drive(func(message))
            elapsed = time.perf_counter_ns() - start
            times[name].append(elapsed / 1000 / broadcasts / members)  # µs per recipient
    result: dict[str, Any] = {"members": members, "repeats": repeats, "broadcasts": broadcasts, "us_per_recipient": {}}
    for name in names:
        result["us_per_recipient"][name] = median(times[name])
    ratios: dict[str, dict[str, float]] = {}
    for name in names:
        if name.startswith("hub"):
            ratios[name] = {
                "speedup_vs_starlette": median(s / h for s, h in zip(times["starlette"], times[name])),
                "x_floor": median(h / f for h, f in zip(times[name], times["floor"])),
            }
    result["ratios"] = ratios
    return result


# --------------------------------------------------------------------------- one stalled member


async def stalled(members: int, repeats: int, publishes: int) -> dict[str, Any]:
    """µs per recipient of the others with no stalled member and with one whose send never completes (paired)."""
    import bocadillo_ws
    from bocadillo_ws import Hub, WebSocket

    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def room(with_stall: bool) -> tuple[Any, list[Any]]:
        hub = Hub(on_overflow="drop_newest")  # the stalled member stays stalled (and counted) throughout
        memberships = []
        for i in range(members):
            stall = with_stall and i == members // 2

            async def receive() -> dict[str, Any]:
                return {"type": "websocket.connect"}

            async def send(event: dict[str, Any], stall: bool = stall) -> None:
                if stall and event["type"] == "websocket.send":
                    await never

            ws = WebSocket(dict(SCOPE), receive, send)
            await ws.accept()
            membership = hub.join("lobby", ws)
            await membership.__aenter__()
            memberships.append(membership)
        return hub, memberships

    hubs = {"no_stall": await room(False), "one_stalled": await room(True)}
    message = common.chat_message()
    times: dict[str, list[float]] = {name: [] for name in hubs}
    for r in range(repeats):
        for name in sorted(hubs, reverse=bool(r % 2)):
            hub = hubs[name][0]
            start = time.perf_counter_ns()
            for _ in range(publishes):
                await hub.publish("lobby", message)
            times[name].append((time.perf_counter_ns() - start) / 1000 / publishes / (members - 1))
    stats = hubs["one_stalled"][0].stats()
    for hub, memberships in hubs.values():
        for membership in memberships:
            await membership.__aexit__(None, None, None)
        await hub.aclose()
    return {
        "backend": bocadillo_ws.BACKEND,
        "us_per_recipient": {name: median(values) for name, values in times.items()},
        "ratio": median(b / a for a, b in zip(times["no_stall"], times["one_stalled"])),
        "stalled_member_dropped": stats.dropped,
    }


# --------------------------------------------------------------------------- Redis


@contextlib.contextmanager
def redis_url(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RuntimeError("no redis-server: pass --redis URL, or --no-redis (tools/ensure_redis.sh installs it)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


# The flooding process: a plain redis-py client, pipelined publishes in batches
# (an origin id of zeros: never this process's).
FLOODER = """
import sys, redis
url, channel, payload, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = redis.Redis.from_url(url)
message = b"0" * 16 + b"t" + payload.encode()
for start in range(0, count, 1000):
    pipe = client.pipeline(transaction=False)
    for _ in range(min(1000, count - start)):
        pipe.publish(channel, message)
    pipe.execute()
"""


class Recorder:
    """A member's server side that records when each frame arrives."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(self, event: dict[str, Any]) -> None:
        if event["type"] == "websocket.send":
            self.arrivals.append((time.perf_counter(), event.get("text")))


async def through_redis(url: str, seconds: float, flood: int) -> dict[str, Any]:
    from bocadillo_ws import Hub, WebSocket

    recorder = Recorder()
    ws = WebSocket(dict(SCOPE), recorder.receive, recorder.send)
    await ws.accept()
    recorder.arrivals.clear()
    async with Hub(url) as sender, Hub(url) as receiver, receiver.join("bench", ws):
        # Latency at 1,000 msg/s: each message carries its send time.
        count = int(seconds * 1000)
        start = time.perf_counter()
        for i in range(count):
            target = start + i / 1000
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await sender.publish_text("bench", repr(time.perf_counter()))
        await asyncio.sleep(0.5)
        latencies = sorted((arrived - float(text)) * 1000 for arrived, text in recorder.arrivals)
        received = len(latencies)
        # Drain: another process floods the room with pipelined publishes;
        # the rate is what this process reads, decodes and fans out.
        recorder.arrivals.clear()
        payload = json.dumps(common.chat_message())
        flooder = await asyncio.create_subprocess_exec(sys.executable, "-c", FLOODER, url, "bocadillo_ws:bench", payload, str(flood))
        deadline = time.monotonic() + 60
        while len(recorder.arrivals) < flood and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll
            await asyncio.sleep(0.01)
        await flooder.wait()
        drained = len(recorder.arrivals)
        span = recorder.arrivals[-1][0] - recorder.arrivals[0][0] if drained > 1 else 0.0
    return {
        "published": count,
        "received": received,
        "latency_ms": {
            "p50": latencies[len(latencies) // 2] if latencies else None,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None,
        },
        "flood": flood,
        "drained": drained,
        "drain_msgs_per_s": (drained - 1) / span if span else None,
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: few repeats, short Redis runs")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--redis", metavar="URL", help="use this Redis instead of starting redis-server")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis measurements")
    parser.add_argument("--json", metavar="OUT", help="write the raw results here")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 15)
    broadcasts = 5 if args.quick else 50

    raw: dict[str, Any] = {"machine": common.machine_info(), "python": sys.version}
    raw["in_process"] = result = in_process(args.members, repeats, broadcasts)
    print(f"fan-out to {args.members} members, µs per recipient (median of {repeats} repeats):")
    for name, us in result["us_per_recipient"].items():
        extra = ""
        if name in result["ratios"]:
            ratio = result["ratios"][name]
            extra = f"   {ratio['speedup_vs_starlette']:.1f}x Starlette's loop, {ratio['x_floor']:.2f}x the floor"
        print(f"  {name:<14} {us:8.3f}{extra}")
    raw["stalled"] = stall = asyncio.run(stalled(args.members, repeats, broadcasts))
    print(
        f"one stalled member (hub on the {stall['backend']} backend): the others {stall['us_per_recipient']['one_stalled']:.3f} µs"
        f" per recipient vs {stall['us_per_recipient']['no_stall']:.3f} with none ({stall['ratio']:.2f}x)"
    )
    if not args.no_redis:
        try:
            with redis_url(args.redis) as url:
                seconds, flood = (1.0, 5_000) if args.quick else (5.0, 50_000)
                raw["redis"] = redis = asyncio.run(through_redis(url, seconds, flood))
        except (RuntimeError, OSError, ImportError) as exc:
            print(f"!! Redis measurements skipped: {exc}", file=sys.stderr)
            raw["redis"] = {"error": str(exc)}
        else:
            lat = redis["latency_ms"]
            print(
                f"through Redis: {redis['received']}/{redis['published']} received at 1,000 msg/s,"
                f" latency p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms;"
                f" one hub drains {redis['drain_msgs_per_s']:,.0f} msg/s ({redis['drained']}/{redis['flood']})"
            )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(raw, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
