"""Cost of ``bocadillo_ws.fastapi.install(app)``, once per connection (never per message).

    python benchmarks/bench_fastapi_install.py [--connections N] [--repeats R] [--testclient | --instructions]

Each variant is a FastAPI app whose endpoint accepts and closes; one
connection is the whole ASGI call (routing, dependency solving, accept,
close), driven in process with a minimal ``receive``/``send``. µs/connection
is the CPU time of N connections divided by N (this thread's,
``time.thread_time_ns``; GC paused), median of R rounds; the variants take
turns within each round, in an order that alternates between rounds, so that
drift on a shared machine hits them alike.

Annotations, each on a route of the app and on a route of an included router:

- ``fastapi``: ``websocket: fastapi.WebSocket`` (FastAPI's own object; the floor)
- ``alias``: ``websocket: bocadillo_ws.fastapi.WebSocket`` (the ``Annotated`` dependency)
- ``install``: ``websocket: bocadillo_ws.WebSocket`` on an app that called ``install``
- ``fastapi, no hook``: the first again, with FastAPI's ``solve_dependencies``
  unwrapped for its turn, as in a process where no app called ``install``:
  ``fastapi`` minus this is what the process-wide hook costs an app without it.

``--instructions`` counts instructions per connection instead, under
``valgrind --tool=callgrind`` (one process per variant, counting only inside
``coroutine.send()``, which drives the N connections: no event loop is
needed, nothing in them suspends): the same count whatever else the machine
runs, where the clocks of a shared VM swing by tens of percent.

``--testclient`` also times N connections of each through Starlette's
``TestClient`` (wall clock, one run: its thread and portal dominate, so only
large differences would mean anything).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent.parent:  # pragma: no cover
    raise SystemExit("run by path from a venv with bocadillo_ws installed (not the source tree)")

import fastapi
import fastapi.dependencies.utils
import fastapi.routing
from fastapi import APIRouter, FastAPI

import bocadillo_ws
import bocadillo_ws.fastapi as bws_fastapi

SCOPE: dict[str, Any] = {
    "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "http_version": "1.1",
    "path": "/ws", "raw_path": b"/ws", "query_string": b"", "root_path": "",
    "headers": [(b"host", b"testserver"), (b"sec-websocket-version", b"13")],
    "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "subprotocols": [],
}


def make_app(annotation: Any, *, included: bool, install: bool) -> FastAPI:
    app = FastAPI()
    router = APIRouter() if included else app.router

    async def endpoint(websocket: Any) -> None:
        await websocket.accept()
        await websocket.close()

    endpoint.__annotations__["websocket"] = annotation
    router.add_api_websocket_route("/ws", endpoint)
    if included:
        app.include_router(router)
    if install:
        bws_fastapi.install(app)
    return app


async def connect(app: FastAPI) -> None:
    events = iter(({"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}))
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(events)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app(dict(SCOPE), receive, send)
    assert sent == ["websocket.accept", "websocket.close"], sent


def run_connections(loop: asyncio.AbstractEventLoop, app: FastAPI, connections: int) -> float:
    async def run() -> None:
        for _ in range(connections):
            await connect(app)

    gc.collect()
    gc.disable()
    try:
        start = time.thread_time_ns()
        loop.run_until_complete(run())
        return (time.thread_time_ns() - start) / connections / 1000
    finally:
        gc.enable()


def time_testclient(app: FastAPI, connections: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    with TestClient(app) as client:
        for _ in range(50):  # warm up
            with client.websocket_connect("/ws"):
                pass
        start = time.perf_counter_ns()
        for _ in range(connections):
            with client.websocket_connect("/ws"):
                pass
        return (time.perf_counter_ns() - start) / connections / 1000


def build_variants() -> tuple[dict[str, tuple[FastAPI, bool]], Callable[[bool], None]]:
    """The variants, name: (app, hook present), and the switch for the hook."""
    modules = (fastapi.dependencies.utils, fastapi.routing)
    unwrapped = [module.solve_dependencies for module in modules]
    variants: dict[str, tuple[FastAPI, bool]] = {}
    for where, included in (("app route", False), ("included route", True)):
        floor = make_app(fastapi.WebSocket, included=included, install=False)
        variants[f"fastapi, no hook ({where})"] = (floor, False)
        variants[f"fastapi ({where})"] = (floor, True)  # the same app: only the hook differs
        variants[f"alias ({where})"] = (make_app(bws_fastapi.WebSocket, included=included, install=False), True)
        variants[f"install ({where})"] = (make_app(bocadillo_ws.WebSocket, included=included, install=True), True)
    wrapped = [module.solve_dependencies for module in modules]

    def hook(present: bool) -> None:
        for module, function in zip(modules, wrapped if present else unwrapped):
            module.solve_dependencies = function  # type: ignore[attr-defined]

    return variants, hook


def timed(variants: dict[str, tuple[FastAPI, bool]], hook: Callable[[bool], None], args: argparse.Namespace) -> dict[str, float]:
    loop = asyncio.new_event_loop()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for round_ in range(args.repeats + 1):  # round 0 warms up (lazily built routes, caches)
        for name in order if round_ % 2 else reversed(order):  # turns alternate: no variant always goes first
            app, present = variants[name]
            hook(present)
            run_connections(loop, app, 20)  # its own caches warm, whatever ran before it
            took = run_connections(loop, app, args.connections)
            if round_:
                samples[name].append(took)
    hook(True)
    loop.close()
    return {name: median(values) for name, values in samples.items()}


def count_worker(name: str, connections: int) -> None:
    """Inside valgrind: warm up on an event loop, then N connections in one coroutine.send()."""
    variants, hook = build_variants()
    app, present = variants[name]
    hook(present)
    loop = asyncio.new_event_loop()
    run_connections(loop, app, 50)
    loop.close()

    async def run() -> None:
        for _ in range(connections):
            await connect(app)

    try:
        run().send(None)
    except StopIteration:
        return
    raise SystemExit(f"{name}: a connection suspended; it cannot be counted in one send()")


def counted(variants: dict[str, tuple[FastAPI, bool]], args: argparse.Namespace) -> dict[str, float]:
    counts = {}
    for name in variants:
        with tempfile.TemporaryDirectory() as tmp:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
                       "--collect-atstart=no", "--toggle-collect=gen_send",
                       sys.executable, __file__, "--count-worker", name, "--connections", str(args.connections)]
            result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        match = re.search(r"refs:\s+([\d,]+)", result.stderr)
        if result.returncode != 0 or match is None or match.group(1) == "0":
            raise SystemExit(f"{name}: no instruction count from valgrind\n{result.stderr[-2000:]}")
        counts[name] = int(match.group(1).replace(",", "")) / args.connections
        print(f"  {name}: {counts[name]:,.0f}", file=sys.stderr, flush=True)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--testclient", action="store_true")
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--count-worker", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_worker:
        count_worker(args.count_worker, args.connections)
        return

    variants, hook = build_variants()
    results = counted(variants, args) if args.instructions else timed(variants, hook, args)
    unit = "instructions/connection" if args.instructions else "µs/connection (in process)"
    how = "callgrind" if args.instructions else f"median of {args.repeats} rounds"
    print(f"Python {sys.version.split()[0]}, FastAPI {fastapi.__version__}, bocadillo_ws {bocadillo_ws.BACKEND}; "
          f"{args.connections} connections, {how}")
    for name, (app, present) in variants.items():
        value = f"{results[name]:10,.0f}" if args.instructions else f"{results[name]:8.1f}"
        line = f"{name:34} {value} {unit}"
        if args.testclient and present:
            line += f"   {time_testclient(app, args.connections):8.1f} µs/connection (TestClient)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
