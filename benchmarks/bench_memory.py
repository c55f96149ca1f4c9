"""Memory: bytes per connection object, and RSS growth over many messages.

    python benchmarks/bench_memory.py [--quick] [--objects 10000] [--messages 1000000] [--json OUT]

1. Bytes per object: tracemalloc's traced total before and after creating
   ``--objects`` WebSocket objects (same scope, same receive/send), all kept
   alive, divided by their number. The list holding them is allocated
   before the first reading, and a few objects are made and dropped first so
   one-time caches are not counted. Compiled, pure and Starlette's.
2. RSS growth: one accepted compiled-backend WebSocket does
   ``receive_json`` + ``send_json`` of the ~100-byte chat message
   ``--messages`` times on the in-memory transport (driven without an event
   loop, GC on as in production). RSS (/proc/self/statm) is read after a
   warm-up and then every tenth of the run; growth = last - after warm-up.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import _common as common
from bench_ops import drive, transport

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def factories() -> dict[str, Callable[[Any, Any], Any]]:
    """name -> make(receive, send), for every implementation available here."""
    from starlette.websockets import WebSocket as StarletteWebSocket

    def maker(cls: Any) -> Callable[[Any, Any], Any]:
        return lambda receive, send: cls(common.SCOPE, receive, send)

    made = {name: maker(cls) for name in ("compiled", "pure") if (cls := common.bocadillo_class(name)) is not None}
    made["starlette"] = maker(StarletteWebSocket)
    return made


def bytes_per_object(make: Callable[[Any, Any], Any], count: int) -> float:
    receive, send, _ = transport({"type": "websocket.receive", "text": "{}"})
    for _ in range(100):  # one-time costs (type caches, codec singletons) are not per connection
        make(receive, send)
    keep: list[Any] = [None] * count
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            keep[i] = make(receive, send)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del keep
    return (after - before) / count


async def _echo(ws: Any, n: int) -> None:
    receive_json, send_json = ws.receive_json, ws.send_json
    for _ in range(n):
        await send_json(await receive_json())


def rss_growth(messages: int, backend: str) -> dict[str, Any]:
    cls = common.bocadillo_class(backend)
    if cls is None:
        return {"error": f"the {backend} backend is not importable"}
    doc = common.chat_message()
    sent: list[Any] = []
    receive, send, connected = transport({"type": "websocket.receive", "text": common.dumps_compact(doc)})
    ws = cls(common.SCOPE, receive, send)
    drive(ws.accept())
    connected()
    # Check once that the loop really echoes (a broken op must not look lean).
    check_receive, check_send, check_connected = transport(
        {"type": "websocket.receive", "text": common.dumps_compact(doc)}, sent
    )
    probe = cls(common.SCOPE, check_receive, check_send)
    drive(probe.accept())
    check_connected()
    drive(_echo(probe, 1))
    if json.loads(sent[-1]["text"]) != doc:
        raise AssertionError(f"{backend}: the echo loop sent {sent[-1]!r}")

    warmup = max(1, messages // 100)
    drive(_echo(ws, warmup))
    gc.collect()
    start = rss_bytes()
    samples = [start]
    chunk = max(1, (messages - warmup) // 10)
    done = warmup
    while done < messages:
        step = min(chunk, messages - done)
        drive(_echo(ws, step))
        done += step
        samples.append(rss_bytes())
    gc.collect()
    end = rss_bytes()
    return {
        "backend": backend,
        "messages": messages,
        "warmup_messages": warmup,
        "rss_after_warmup": start,
        "rss_end": end,
        "growth_bytes": end - start,
        "growth_bytes_per_message": (end - start) / max(1, messages - warmup),
        "rss_samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 objects and 50,000 messages")
    parser.add_argument("--objects", type=int, help="objects per implementation (default 10,000)")
    parser.add_argument("--messages", type=int, help="messages for the RSS run (default 1,000,000)")
    parser.add_argument("--backend", choices=("compiled", "pure"), default="compiled", help="for the RSS run")
    parser.add_argument("--json", metavar="OUT", help="write the raw results here")
    args = parser.parse_args(argv)
    objects = args.objects or (1_000 if args.quick else 10_000)
    messages = args.messages or (50_000 if args.quick else 1_000_000)
    common.check_installed_package()

    per_object = {}
    for name, make in factories().items():
        per_object[name] = {"bytes": bytes_per_object(make, objects), "objects": objects}
    growth = rss_growth(messages, args.backend)
    raw = {
        "bench": "memory",
        "machine": common.machine_info(),
        "packages": common.package_versions(common.BENCH_PACKAGES),
        "per_object": per_object,
        "rss": growth,
    }
    print(f"bytes per connection object (tracemalloc, {objects:,} kept alive):")
    star = per_object["starlette"]["bytes"]
    for name, value in per_object.items():
        print(f"  {name:10} {value['bytes']:8.0f} B   ({value['bytes'] / star:.2f}x Starlette's)")
    if "error" in growth:
        print(f"RSS growth: {growth['error']}")
    else:
        print(
            f"RSS growth over {messages:,} receive_json + send_json "
            f"({args.backend}, after {growth['warmup_messages']:,} warm-up): "
            f"{growth['growth_bytes'] / 1024:+.0f} KiB ({growth['growth_bytes_per_message']:.3f} B/message); "
            f"RSS {growth['rss_after_warmup'] / 2**20:.1f} -> {growth['rss_end'] / 2**20:.1f} MiB"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(raw, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
