"""Joining and leaving a Hub room, by room size; and the memory of a membership.

    python benchmarks/bench_membership.py [--sizes 1000,10000,100000] [--repeats R] [--batch N] [--json OUT]

For each size N, on each backend's ``WebSocket`` (the hub's own code is the
same on both; only the member type differs):

- ``fill``: N members join one empty room, one after the other (seconds),
  then ``leave``: they all leave (seconds) — a reconnect storm;
- ``join µs``: the marginal cost of a join into a room that already has N
  members: ``--batch`` more members join (``join()`` and entering it) and leave, the best (minimum) of
  ``--repeats`` batches, per join + leave pair (the minimum: what the code
  costs, with the machine's noise removed; the garbage collector paused,
  whose passes cost by the size of the whole heap, not of the room);
- ``ratio``: that marginal cost at N over the one at the smallest size
  (1.0: independent of the room's size).

Then the memory of a membership: 100,000 members joined to 100 rooms
(1,000 each), ``tracemalloc``'s net allocation per membership, the object
``join()`` returns included (the members themselves excluded: the app has
them anyway). The in-memory hub's ``join`` never suspends, so each
``__aenter__``/``__aexit__`` coroutine is driven by one ``send(None)``, no
event loop.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent.parent:  # pragma: no cover
    raise SystemExit("run by path from a venv with bocadillo_ws installed (not the source tree)")

import importlib

import _common as common
from bench_ops import drive
from bocadillo_ws import Hub

MODULES = {"compiled": "bocadillo_ws._codec", "pure": "bocadillo_ws._codec_py"}


async def _receive() -> dict[str, Any]:
    return {"type": "websocket.connect"}


async def _send(event: dict[str, Any]) -> None:
    return None


def sockets(cls: type[Any], count: int) -> list[Any]:
    return [cls(dict(common.SCOPE), _receive, _send) for _ in range(count)]


def hub_class(backend: str) -> type[Hub]:
    """``Hub`` with ``backend``'s fan_out, which takes that backend's members."""
    module = importlib.import_module(MODULES[backend])
    return type("BenchHub", (Hub,), {"_fan_out": staticmethod(module.fan_out)})


def fill_and_leave(hub_type: type[Hub], cls: type[Any], size: int) -> tuple[float, float]:
    hub = hub_type()
    memberships = [hub.join("room", ws) for ws in sockets(cls, size)]
    start = time.perf_counter()
    for membership in memberships:
        drive(membership.__aenter__())
    joined = time.perf_counter()
    for membership in memberships:
        drive(membership.__aexit__(None, None, None))
    return joined - start, time.perf_counter() - joined


def marginal_us(hub_type: type[Hub], cls: type[Any], size: int, batch: int, repeats: int) -> float:
    """µs per join + leave of one more member, in a room of ``size`` members (best batch)."""
    hub = hub_type()
    room = [hub.join("room", ws) for ws in sockets(cls, size)]  # kept alive, as `async with` keeps them
    for membership in room:
        drive(membership.__aenter__())
    extra = sockets(cls, batch)
    best = float("inf")
    gc.collect()
    gc.disable()  # a collection's cost grows with the whole heap, not with this room
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            memberships = [hub.join("room", ws) for ws in extra]
            for membership in memberships:
                drive(membership.__aenter__())
            for membership in memberships:
                drive(membership.__aexit__(None, None, None))
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best / batch * 1e6


def bytes_per_membership(hub_type: type[Hub], cls: type[Any], members: int = 100_000, rooms: int = 100) -> float:
    members_list = sockets(cls, members)
    hub = hub_type()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    for i, ws in enumerate(members_list):
        membership = hub.join(f"room-{i % rooms}", ws)
        drive(membership.__aenter__())
        kept.append(membership)  # as `async with` keeps it alive
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert hub.stats().members == members
    return (after - before) / members


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[str, Any] = {}
    print(f"Hub membership, Python {sys.version.split()[0]}")
    for backend in ("compiled", "pure"):
        cls = common.bocadillo_class(backend)
        if cls is None:
            continue
        hub_type = hub_class(backend)
        rows = []
        for size in sizes:
            fill, leave = fill_and_leave(hub_type, cls, size)
            marginal = marginal_us(hub_type, cls, size, args.batch, args.repeats)
            rows.append({"size": size, "fill_s": fill, "leave_s": leave, "join_leave_us": marginal})
        base = rows[0]["join_leave_us"]
        print(f"  {backend}:")
        print(f"    {'members':>8} {'fill s':>8} {'leave s':>8} {'join+leave µs':>14} {'ratio':>6}")
        for row in rows:
            row["ratio"] = row["join_leave_us"] / base
            print(
                f"    {row['size']:>8,} {row['fill_s']:>8.3f} {row['leave_s']:>8.3f}"
                f" {row['join_leave_us']:>14.2f} {row['ratio']:>6.2f}"
            )
        memory = bytes_per_membership(hub_type, cls)
        print(f"    memory: {memory:.0f} bytes per membership (100,000 members in 100 rooms, join()'s object included)")
        results[backend] = {"rows": rows, "bytes_per_membership": memory}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
