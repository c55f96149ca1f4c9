"""Publishes per second of one process through the Hub's Redis link, beside redis-py's own.

    python benchmarks/bench_publish.py [--quick] [--seconds S] [--repeats R] [--publishers 100]
                                       [--redis URL] [--json OUT]

A ``redis-server`` is started here on a free port unless ``--redis URL``.
Each variant publishes a ~100-byte chat message (``_common.chat_message``)
to a room with no local member for ``--seconds``, in one process:

- ``hub, N concurrent``: N tasks, each ``await hub.publish(room, message)``
  in a loop (the JSON encode included, as an app pays it);
- ``hub, one at a time``: one task doing the same;
- ``redis-py pipeline``: redis-py's asyncio client, ``pipeline(transaction=False)``
  of N ``PUBLISH`` per ``execute()`` (the message encoded once, beforehand):
  the reference for what one connection and one process can do;
- ``redis-py, one at a time``: ``await client.publish(...)`` in a loop.

Each repeat runs every variant once, in a rotating order; figures are
medians over repeats. ``HubUnavailable`` raised during a run is counted and
printed: on a healthy local Redis it must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from statistics import median
from typing import Any

import _common as common
from bench_fanout import redis_url

ROOM = "bench"
CHANNEL = b"bench_publish:" + ROOM.encode()


async def hub_concurrent(url: str, seconds: float, publishers: int) -> tuple[int, int]:
    """(published, HubUnavailable) with ``publishers`` tasks publishing in a loop."""
    from bocadillo_ws import Hub, HubUnavailable

    message = common.chat_message()
    counts = [0, 0]
    async with Hub(url, channel_prefix="bench_publish:") as hub:
        deadline = time.perf_counter() + seconds

        async def publisher() -> None:
            while time.perf_counter() < deadline:
                try:
                    await hub.publish(ROOM, message)
                    counts[0] += 1
                except HubUnavailable:
                    counts[1] += 1

        await asyncio.gather(*(publisher() for _ in range(publishers)))
    return counts[0], counts[1]


async def redis_py_pipeline(url: str, seconds: float, batch: int) -> tuple[int, int]:
    from redis.asyncio import Redis

    message = b"0" * 17 + json.dumps(common.chat_message(), separators=(",", ":"), ensure_ascii=False).encode()
    published = 0
    async with Redis.from_url(url) as client:
        await client.ping()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            pipe = client.pipeline(transaction=False)
            for _ in range(batch):
                pipe.publish(CHANNEL, message)
            await pipe.execute()
            published += batch
    return published, 0


async def redis_py_one_at_a_time(url: str, seconds: float) -> tuple[int, int]:
    from redis.asyncio import Redis

    message = b"0" * 17 + json.dumps(common.chat_message(), separators=(",", ":"), ensure_ascii=False).encode()
    published = 0
    async with Redis.from_url(url) as client:
        await client.ping()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            await client.publish(CHANNEL, message)
            published += 1
    return published, 0


def variants(url: str, seconds: float, publishers: int) -> dict[str, Callable[[], Awaitable[tuple[int, int]]]]:
    return {
        f"hub, {publishers} concurrent": lambda: hub_concurrent(url, seconds, publishers),
        "hub, one at a time": lambda: hub_concurrent(url, seconds, 1),
        f"redis-py pipeline of {publishers}": lambda: redis_py_pipeline(url, seconds, publishers),
        "redis-py, one at a time": lambda: redis_py_one_at_a_time(url, seconds),
    }


async def run(url: str, seconds: float, repeats: int, publishers: int) -> dict[str, Any]:
    funcs = variants(url, seconds, publishers)
    names = list(funcs)
    rates: dict[str, list[float]] = {name: [] for name in names}
    failures = dict.fromkeys(names, 0)
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            start = time.perf_counter()
            published, failed = await funcs[name]()
            elapsed = time.perf_counter() - start
            rates[name].append(published / elapsed)
            failures[name] += failed
    return {
        "seconds": seconds,
        "repeats": repeats,
        "publishers": publishers,
        "publishes_per_s": {name: median(values) for name, values in rates.items()},
        "all_runs": rates,
        "hub_unavailable": failures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat of 0.5 s")
    parser.add_argument("--seconds", type=float, default=None, help="per variant and repeat (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5")
    parser.add_argument("--publishers", type=int, default=100, help="concurrent publishers (and redis-py's batch)")
    parser.add_argument("--redis", metavar="URL", help="use this Redis instead of starting redis-server")
    parser.add_argument("--json", metavar="OUT", help="write the raw results here")
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    repeats = args.repeats or (1 if args.quick else 5)

    with redis_url(args.redis) as url:
        result = asyncio.run(run(url, seconds, repeats, args.publishers))
    print(f"publishes/s of one process, ~100-byte JSON, median of {repeats} x {seconds} s:")
    for name, rate in result["publishes_per_s"].items():
        failed = result["hub_unavailable"][name]
        print(f"  {name:<28} {rate:10,.0f}" + (f"   ({failed} HubUnavailable)" if failed else ""))
    if args.json:
        raw = {"machine": common.machine_info(), "python": sys.version, **result}
        with open(args.json, "w") as out:
            json.dump(raw, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
