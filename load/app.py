"""The load and fault target: a bocadillo_ws JSON echo app under uvicorn, with its own statistics.

Routes:

- ``/echo`` (WebSocket): every JSON message is echoed back as received, via
  ``async with ws`` / ``async for message in ws`` / ``ws.send(message)``.
  A message shaped ``{"cid", "seq", "body", "crc"}`` has its checksum
  (``zlib.crc32`` of the UTF-8 body) checked on arrival; a mismatch counts
  as ``bad_checksums``. ``{"slow": seconds}`` makes the view sleep before
  echoing (load/faults.py uses it to be mid-work at shutdown).
- ``/stats`` (HTTP GET): the statistics below, as JSON.

Statistics: connections opened / ended / live, messages echoed, bad
checksums, how each view's ``async with`` ended (``exits``: ``"disconnect
<code>"``, ``"returned"``, or the exception type), and ``errors`` (every
exception that escaped a view, by type; the view re-raises nothing, so
uvicorn logs nothing). On shutdown (lifespan) they are written to the
``--stats`` file, once every connection has ended.

Run: ``python load/app.py --fd N`` (a listening socket the parent made) or
``--port P``. Environment: ``LOAD_APP_CODEC=ujson|orjson|json`` (read at
import, as ``websocket_view`` takes it), ``LOAD_APP_STATS=path`` (the stats
file), and ``BOCADILLO_WS_NO_EXTENSIONS=1`` for the pure-Python backend.
load/soak.py and load/faults.py start it; it is not meant to face a network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sys
import time
import zlib
from collections import Counter
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

import bocadillo_ws
from bocadillo_ws import WebSocketDisconnect, websocket_view


class Stats:
    def __init__(self) -> None:
        self.started = time.time()
        self.opened = 0
        self.ended = 0
        self.messages = 0
        self.bad_checksums = 0
        self.exits: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "backend": bocadillo_ws.BACKEND,
            "bocadillo_ws": os.path.dirname(bocadillo_ws.__file__),
            "codec": CODEC,
            "opened": self.opened,
            "ended": self.ended,
            "live": self.opened - self.ended,
            "messages": self.messages,
            "bad_checksums": self.bad_checksums,
            "exits": dict(self.exits),
            "errors": dict(self.errors),
            "uptime": round(time.time() - self.started, 3),
        }


STATS = Stats()
CODEC = os.environ.get("LOAD_APP_CODEC", "ujson")
STATS_FILE = os.environ.get("LOAD_APP_STATS")


def checksum_ok(message: Any) -> bool:
    if isinstance(message, dict) and "crc" in message:
        body = message.get("body")
        return isinstance(body, str) and zlib.crc32(body.encode("utf-8")) == message["crc"]
    return True


@websocket_view(value_type="json", json_codec=CODEC)
async def echo(ws: bocadillo_ws.WebSocket) -> None:
    STATS.opened += 1
    how = "returned"
    try:
        async with ws:
            try:
                async for message in ws:
                    if not checksum_ok(message):
                        STATS.bad_checksums += 1
                    if isinstance(message, dict) and "slow" in message:
                        await asyncio.sleep(float(message["slow"]))
                    await ws.send(message)
                    STATS.messages += 1
            except WebSocketDisconnect as exc:
                how = f"disconnect {int(exc.code)}"
                raise  # async with silences it (catch_disconnect) and sends nothing
    except BaseException as exc:
        how = type(exc).__name__
        STATS.errors[how] += 1
        if not isinstance(exc, Exception):
            raise  # cancellation: let it through
    finally:
        STATS.exits[how] += 1
        STATS.ended += 1


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(STATS.as_dict())


async def _all_ended(within: float) -> None:
    deadline = time.monotonic() + within
    while STATS.opened > STATS.ended and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


@asynccontextmanager
async def lifespan(app: Starlette) -> Any:
    yield
    # uvicorn runs lifespan shutdown after its connections are closed; the
    # views may still be unwinding, so give them a moment (bounded).
    await _all_ended(5.0)
    if STATS_FILE:
        tmp = STATS_FILE + ".tmp"
        with open(tmp, "w") as out:
            json.dump(STATS.as_dict(), out)
        os.replace(tmp, STATS_FILE)


app = Starlette(routes=[WebSocketRoute("/echo", echo), Route("/stats", stats)], lifespan=lifespan)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def listener(fd: int | None, port: int) -> socket.socket:
    if fd is not None:
        # fileno= detects family, type and proto: proto must say TCP, or asyncio
        # does not set TCP_NODELAY on accepted sockets (40 ms delayed ACKs).
        return socket.socket(fileno=fd)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fd", type=int, help="a bound, listening TCP socket inherited from the parent")
    parser.add_argument("--port", type=int, default=8765, help="without --fd: bind 127.0.0.1:PORT")
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's WebSocket implementation")
    args = parser.parse_args(argv)
    raise_fd_limit()
    sock = listener(args.fd, args.port)
    print(
        f"load app: backend={bocadillo_ws.BACKEND} codec={CODEC} pid={os.getpid()} "
        f"listening on {sock.getsockname()}",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app,
        ws=args.ws,
        ws_ping_interval=None,
        log_level="warning",
        lifespan="on",
        backlog=4096,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
