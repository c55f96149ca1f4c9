"""Cost of the origin check, once per handshake (never per message).

    python benchmarks/bench_origin.py [--quick] [--repeats R] [--loop-ms MS] [--json OUT]

Times ``OriginPolicy.allows_scope(scope)`` on the scope of a typical
Chromium handshake (13 headers, ``Origin`` and ``Host`` among them) for each
kind of decision, and the whole ``OriginMiddleware`` call for an allowed
handshake (the policy plus one ``await`` of the app) against the app alone.
µs/check is the CPU time of a loop of N checks divided by N (this thread's,
``time.thread_time_ns``; GC paused), median of R repeats. The check is per
handshake: messages never pay it.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Callable, Coroutine
from itertools import repeat
from pathlib import Path
from statistics import median
from time import thread_time_ns
from typing import Any

if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent.parent:  # pragma: no cover
    raise SystemExit("run by path from a venv with bocadillo_ws installed (not the source tree)")

from bocadillo_ws import OriginMiddleware, OriginPolicy

HOST = "chat.example.com"


def browser_scope(origin: str | None) -> dict[str, Any]:
    """The scope a server builds for a Chromium handshake to wss://chat.example.com/ws/lobby."""
    headers = [
        (b"host", HOST.encode()),
        (b"connection", b"Upgrade"),
        (b"pragma", b"no-cache"),
        (b"cache-control", b"no-cache"),
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0"),
        (b"upgrade", b"websocket"),
        (b"sec-websocket-version", b"13"),
        (b"accept-encoding", b"gzip, deflate, br, zstd"),
        (b"accept-language", b"en-GB,en;q=0.9"),
        (b"cookie", b"session=0123456789abcdef0123456789abcdef"),
        (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
    ]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": "wss", "path": "/ws/lobby", "headers": headers}


POLICY = OriginPolicy(
    ["https://admin.example.com", "https://partner.example.org", "https://*.cdn.example.net"], same_origin=True
)
CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "same origin (allowed)": (browser_scope(f"https://{HOST}"), True),
    "listed origin (allowed)": (browser_scope("https://partner.example.org"), True),
    "wildcard origin (allowed)": (browser_scope("https://eu.cdn.example.net"), True),
    "no Origin (allowed)": (browser_scope(None), True),
    "other site (refused)": (browser_scope("https://evil.example"), False),
    "malformed (refused)": (browser_scope("https://evil.example/x"), False),
}


def time_loop(call: Callable[[], object], n: int) -> int:
    gc.disable()
    try:
        start = thread_time_ns()
        for _ in repeat(None, n):
            call()
        return thread_time_ns() - start
    finally:
        gc.enable()


def calibrate(call: Callable[[], object], loop_ns: int) -> int:
    n = 1
    while True:
        took = time_loop(call, n)
        if took >= loop_ns // 4:
            return max(1, n * loop_ns // max(took, 1))
        n *= 4


def measure(call: Callable[[], object], repeats: int, loop_ns: int) -> float:
    """ns per call: the median over ``repeats`` loops."""
    n = calibrate(call, loop_ns)
    return median(time_loop(call, n) / n for _ in range(repeats))


def drive(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine that never suspends (the in-memory app below never does)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("suspended")


async def app(scope: Any, receive: Any, send: Any) -> None:
    pass


async def receive() -> dict[str, Any]:
    return {"type": "websocket.connect"}


async def send(message: Any) -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 5 ms loops")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--loop-ms", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="write the figures (ns) here")
    args = parser.parse_args()
    repeats, loop_ns = (3, 5_000_000) if args.quick else (args.repeats, int(args.loop_ms * 1e6))

    results: dict[str, float] = {}
    for name, (scope, expected) in CASES.items():
        assert POLICY.allows_scope(scope) is expected, name  # the right answer before any timing
        results[f"allows_scope: {name}"] = measure(lambda s=scope: POLICY.allows_scope(s), repeats, loop_ns)

    middleware = OriginMiddleware(app, policy=POLICY)
    allowed = CASES["same origin (allowed)"][0]
    results["app alone (one await)"] = measure(lambda: drive(app(allowed, receive, send)), repeats, loop_ns)
    results["OriginMiddleware + app, allowed"] = measure(
        lambda: drive(middleware(allowed, receive, send)), repeats, loop_ns
    )

    print(f"Python {sys.version.split()[0]}; {repeats} repeats; median CPU time per call")
    width = max(map(len, results))
    for name, ns in results.items():
        print(f"  {name:<{width}}  {ns / 1000:8.3f} µs")
    overhead = results["OriginMiddleware + app, allowed"] - results["app alone (one await)"]
    print(f"  {'middleware overhead per handshake':<{width}}  {overhead / 1000:8.3f} µs")
    if args.json:
        args.json.write_text(json.dumps({"python": sys.version, "ns": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
