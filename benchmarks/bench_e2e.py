"""End to end: a JSON echo through a real uvicorn, four ways, under load.

    python benchmarks/bench_e2e.py [--quick] [--ws websockets-sansio,wsproto] [--loops asyncio,uvloop]
                                   [--apps raw,starlette,pure,compiled] [--rounds R] [--json OUT]

For every (uvicorn --ws, --loop) pair and every app, a uvicorn server runs
in a subprocess on 127.0.0.1 (a random free port), serving one of:

- ``raw``: a bare ASGI app, stdlib ``json`` (what Starlette does inside),
- ``starlette``: Starlette's ``WebSocket`` (``receive_json`` / ``send_json``),
- ``pure`` / ``compiled``: ``bocadillo_ws`` (``websocket_view(value_type="json")``,
  ``async with ws``, ``async for``), on the pure backend
  (``BOCADILLO_WS_NO_EXTENSIONS=1``) or the compiled one; the server
  asserts ``BACKEND``.

A load client (another subprocess, uvloop when installed; ``--client
picows``, the default, or ``--client websockets``) opens many connections,
each keeping a window of messages in flight; every message carries a
sequence number and a send timestamp, and every echo is checked (same
document, in order). After a warm-up it counts echoes for a fixed time:
messages/s and p50/p99 round-trip latency. With 2+ CPUs, server and client
are pinned to different CPUs. The server's and the client's CPU time per
message (utime+stime from /proc, read by the client at the window's edges)
are reported too, with the share of the window each spent waiting for its
CPU (/proc/<pid>/schedstat: other processes on it). picows (Cython, one
callback per echo frame) costs the client about a third of the server's CPU
per message, so the server is the bottleneck; the ``websockets`` client
costs about as much as the server and often limits messages/s itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any, cast

import _common as common

APPS = ("raw", "starlette", "pure", "compiled")
WS_IMPLS = ("websockets-sansio", "wsproto")
LOOPS = ("asyncio", "uvloop")
START_TIMEOUT = 20.0  # seconds for a server to report it is listening
STOP_TIMEOUT = 10.0
SCRIPT = Path(__file__).resolve()
CLK_TCK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------- the server role


def make_app(name: str) -> Any:
    """The echo app, written four ways."""
    if name == "raw":

        async def raw_app(scope: Any, receive: Any, send: Any) -> None:
            # What Starlette's receive_json/send_json do, minus the WebSocket object.
            assert scope["type"] == "websocket"
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    return
                data = json.loads(event["text"])
                text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
                await send({"type": "websocket.send", "text": text})

        return raw_app

    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def starlette_echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_json(await ws.receive_json())
        except WebSocketDisconnect:
            pass

    if name == "starlette":
        return Starlette(routes=[WebSocketRoute("/echo", starlette_echo)])

    import bocadillo_ws

    want = "python" if name == "pure" else "cython"
    if bocadillo_ws.BACKEND != want:
        sys.exit(f"server for {name!r}: bocadillo_ws.BACKEND is {bocadillo_ws.BACKEND!r}, expected {want!r}")

    @bocadillo_ws.websocket_view(value_type="json")
    async def bocadillo_echo(ws: bocadillo_ws.WebSocket) -> None:
        async with ws:
            async for message in ws:
                await ws.send(message)

    return Starlette(routes=[WebSocketRoute("/echo", bocadillo_echo)])


def serve(app_name: str, ws: str, loop: str) -> None:
    """Run uvicorn on a random port; print ``READY <port>`` once it listens."""
    import uvicorn

    if app_name in ("pure", "compiled"):
        common.check_installed_package()
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when
    # their proto says TCP; without it small frames wait on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # No compression and no pings: they cost the same for every app and hide the difference.
    config = uvicorn.Config(
        make_app(app_name),
        ws=ws,
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws_ping_interval=None,
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()  # raises what made startup fail
                return
            await asyncio.sleep(0.01)
        print(f"READY {port}", flush=True)
        await task

    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


# --------------------------------------------------------------------------- the client role


def cpu_seconds(pid: int | str) -> float:
    """utime + stime of a process, from /proc (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_queue_seconds(pid: int | str) -> float | None:
    """Time the (main thread of the) process spent runnable but waiting for a CPU, from /proc/<pid>/schedstat.

    Other processes on the same CPU show up here: it is how busy the machine was, not the process.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):  # a kernel without schedstats
        return None


def _pct(a: float | None, b: float | None, elapsed: float) -> float | None:
    return None if a is None or b is None else 100 * (b - a) / elapsed


class EchoError(Exception):
    pass


class Tally:
    """What every connection adds to: echoes counted in the window and their round trips."""

    __slots__ = ("counted", "latencies", "window_end", "window_start")

    def __init__(self) -> None:
        # Nothing counts, and sending goes on, until the run's window is set.
        self.window_start = self.window_end = float("inf")
        self.counted = 0
        self.latencies: list[float] = []


def client_json() -> tuple[Callable[[Any], bytes], Callable[[Any], Any]]:
    """``dumps`` (to UTF-8 bytes) and ``loads`` for the client's own JSON: orjson when installed."""
    try:
        import orjson  # the client's work is not what is measured: keep it cheap

        return orjson.dumps, orjson.loads
    except ImportError:

        def dumps(obj: Any) -> bytes:
            return common.dumps_compact(obj).encode()

        return dumps, json.loads


def check_echo(conn_id: int, expected_seq: int, reply: bytes | str, sent: bytes, loads: Callable[[Any], Any]) -> None:
    """The slow path, when the echo is not byte-for-byte what was sent: same document, same sequence number."""
    echo = loads(reply)
    if echo == loads(sent):
        return
    got = echo.get("id") if isinstance(echo, dict) else None
    if got != expected_seq:
        raise EchoError(f"connection {conn_id}: expected #{expected_seq}, got #{got} (lost or out of order)")
    raise EchoError(f"connection {conn_id}: echo of #{expected_seq} differs: {reply[:80]!r}")


async def websockets_connections(url: str, connections: int, window: int, tally: Tally) -> list[Any]:
    """The ``websockets`` library's asyncio client: one task per connection, one ``await`` per message.

    Returns, once every connection is open, one task per connection that
    finishes when its last echo is in (after ``tally.window_end``).
    """
    from websockets.asyncio.client import connect

    dumps, loads = client_json()
    options: dict[str, Any] = {"ping_interval": None, "compression": None, "open_timeout": 10, "close_timeout": 2}
    if "proxy" in inspect.signature(connect).parameters:  # websockets >= 15
        options["proxy"] = None
    template = common.chat_message()
    go = asyncio.Event()

    async def one(conn_id: int, ready: asyncio.Event) -> None:
        try:
            ws = await connect(url, **options)
        finally:
            ready.set()  # failed or not: nobody waits on a dead connection
        async with ws:
            await go.wait()
            in_flight: deque[tuple[int, bytes, float]] = deque()
            seq = 0

            async def send_one() -> None:
                nonlocal seq
                ts = time.perf_counter()
                data = dumps(dict(template, id=seq, user=f"u{conn_id}", ts=ts))
                in_flight.append((seq, data, ts))
                seq += 1
                await ws.send(data, text=True)

            for _ in range(window):
                await send_one()
            while in_flight:
                reply = await ws.recv(decode=False)
                now = time.perf_counter()
                expected_seq, sent, sent_at = in_flight.popleft()
                if reply != sent:
                    check_echo(conn_id, expected_seq, reply, sent, loads)
                if tally.window_start <= now < tally.window_end:
                    tally.counted += 1
                    tally.latencies.append(now - sent_at)
                if now < tally.window_end:
                    await send_one()

    readies = [asyncio.Event() for _ in range(connections)]
    tasks = [asyncio.ensure_future(one(i, readies[i])) for i in range(connections)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 20)  # every connection open
        for task in tasks:
            if task.done():
                task.result()  # a connection that failed to open: fail now, not after the run
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    go.set()
    return tasks


async def picows_connections(url: str, connections: int, window: int, tally: Tally) -> list[Any]:
    """picows (Cython): no task and no ``await`` per message, a callback per echo frame.

    Each echo is checked and answered by the next message inside the frame
    callback. Returns, once every connection is open and its first window
    sent, one future per connection: done when its last echo is in (after
    ``tally.window_end``), failed with ``EchoError`` on any bad echo or an
    early disconnect.
    """
    from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    dumps, loads = client_json()
    template = common.chat_message()
    loop = asyncio.get_running_loop()
    perf_counter = time.perf_counter
    TEXT, CONTINUATION, CLOSE = WSMsgType.TEXT, WSMsgType.CONTINUATION, WSMsgType.CLOSE

    class EchoListener(WSListener):
        def __init__(self, conn_id: int) -> None:
            super().__init__()
            self.conn_id = conn_id
            self.user = f"u{conn_id}"
            self.seq = 0
            self.in_flight: deque[tuple[int, bytes, float]] = deque()
            self.fragments: list[bytes] | None = None
            self.done: asyncio.Future[None] = loop.create_future()
            self.transport: WSTransport | None = None

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport

        def send_one(self) -> None:
            ts = perf_counter()
            data = dumps(dict(template, id=self.seq, user=self.user, ts=ts))
            self.in_flight.append((self.seq, data, ts))
            self.seq += 1
            self.transport.send(TEXT, data)  # type: ignore[union-attr]

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if self.done.done():
                return
            try:
                self.on_frame(frame)
            except Exception as exc:  # kept for the run to raise; picows would only log it
                self.done.set_exception(exc)

        def on_frame(self, frame: WSFrame) -> None:
            now = perf_counter()
            kind = frame.msg_type
            if kind is CLOSE:
                raise EchoError(f"connection {self.conn_id}: the server closed it ({frame.get_close_code()})")
            if kind is TEXT and frame.fin and self.fragments is None:
                reply = frame.get_payload_as_bytes()
            elif (kind is TEXT and self.fragments is None) or (kind is CONTINUATION and self.fragments is not None):
                # A fragmented message (the servers here send small ones whole): gather it, then check it.
                self.fragments = self.fragments or []
                self.fragments.append(frame.get_payload_as_bytes())
                if not frame.fin:
                    return
                reply, self.fragments = b"".join(self.fragments), None
            elif kind is WSMsgType.PONG:
                return
            else:
                raise EchoError(f"connection {self.conn_id}: unexpected {kind.name} frame")
            if not self.in_flight:
                raise EchoError(f"connection {self.conn_id}: an echo of nothing sent: {reply[:80]!r}")
            expected_seq, sent, sent_at = self.in_flight.popleft()
            if reply != sent:
                check_echo(self.conn_id, expected_seq, reply, sent, loads)
            if tally.window_start <= now < tally.window_end:
                tally.counted += 1
                tally.latencies.append(now - sent_at)
            if now < tally.window_end:
                self.send_one()
            elif not self.in_flight:
                self.done.set_result(None)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            if not self.done.done():
                self.done.set_exception(EchoError(f"connection {self.conn_id}: closed before the run ended"))

    opened = await asyncio.wait_for(
        asyncio.gather(
            *(
                ws_connect(lambda i=i: EchoListener(i), url, websocket_handshake_timeout=10, enable_auto_ping=False)
                for i in range(connections)
            ),
            return_exceptions=True,
        ),
        20,
    )
    ok = [o for o in opened if not isinstance(o, BaseException)]
    listeners = [cast(EchoListener, listener) for _, listener in ok]  # what the factory made
    failed = [o for o in opened if isinstance(o, BaseException)]
    if failed:  # close the ones that opened, then fail now rather than after the run
        for transport, _ in ok:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(t.wait_disconnected() for t, _ in ok)), 5)
        raise failed[0]
    for listener in listeners:
        for _ in range(window):
            listener.send_one()

    async def finish(listener: EchoListener) -> None:
        try:
            await listener.done
        finally:
            transport = listener.transport
            assert transport is not None
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(transport.wait_disconnected(), 5)

    return [asyncio.ensure_future(finish(listener)) for listener in listeners]


CLIENTS = {"picows": picows_connections, "websockets": websockets_connections}


async def load(
    client: str, urls: list[str], server_pids: list[int], connections: int, window: int, warmup: float, duration: float
) -> list[dict[str, Any]]:
    """Open the connections to every server, start them, count echoes in [warmup, warmup + duration).

    One result per server. With several servers (``--concurrent``) they are loaded at the same time,
    ``connections`` each, through the same client; the client's CPU per message is over all of them.
    """
    tallies = [Tally() for _ in urls]
    tasks: list[Any] = []
    try:
        for url, tally in zip(urls, tallies):
            tasks += await CLIENTS[client](url, connections, window, tally)
        start_at = time.perf_counter()
        for tally in tallies:
            tally.window_start, tally.window_end = start_at + warmup, start_at + warmup + duration
        await asyncio.sleep(start_at + warmup - time.perf_counter())
        wait0, own_wait0 = [run_queue_seconds(pid) for pid in server_pids], run_queue_seconds("self")
        cpu0, own0, t0 = [cpu_seconds(pid) for pid in server_pids], cpu_seconds("self"), time.perf_counter()
        await asyncio.sleep(start_at + warmup + duration - time.perf_counter())
        cpu1, own1, t1 = [cpu_seconds(pid) for pid in server_pids], cpu_seconds("self"), time.perf_counter()
        wait1, own_wait1 = [run_queue_seconds(pid) for pid in server_pids], run_queue_seconds("self")
        await asyncio.wait_for(asyncio.gather(*tasks), 30)  # drain the last windows, close
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = t1 - t0
    client_cpu = own1 - own0
    total = sum(tally.counted for tally in tallies)
    results = []
    for i, tally in enumerate(tallies):
        counted = tally.counted
        latencies = sorted(tally.latencies)
        server_cpu = cpu1[i] - cpu0[i]
        results.append(
            {
                "client": client,
                "servers_at_once": len(urls),
                "messages": counted,
                "seconds": elapsed,
                "rate": counted / elapsed,
                "p50_ms": 1e3 * latencies[len(latencies) // 2] if latencies else None,
                "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None,
                "server_cpu_s": server_cpu,
                "server_cpu_us_per_msg": 1e6 * server_cpu / counted if counted else None,
                "server_cpu_pct": 100 * server_cpu / elapsed,
                "server_wait_pct": _pct(wait0[i], wait1[i], elapsed),
                "client_cpu_us_per_msg": 1e6 * client_cpu / total if total else None,
                "client_cpu_pct": 100 * client_cpu / elapsed,
                "client_wait_pct": _pct(own_wait0, own_wait1, elapsed),
            }
        )
    return results


def run_client(args: argparse.Namespace) -> None:
    urls = args.url.split(",")
    pids = [int(pid) for pid in args.server_pid.split(",")]
    coro = load(args.client, urls, pids, args.connections, args.window, args.warmup, args.duration)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- the orchestrator


def _pin(pid: int, cpu: int | None) -> None:
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def _wait_ready(proc: subprocess.Popen[str], log: Any) -> int:
    """The port the server prints, within START_TIMEOUT."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {_tail(log)}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                return int(line.split()[1])
    raise RuntimeError("server did not start in time")


def _tail(log: Any) -> str:
    log.seek(0)
    lines = log.read().strip().splitlines()
    return lines[-1] if lines else "(no output)"


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


def run_group(
    apps: list[str], ws: str, loop: str, opts: argparse.Namespace, cpus: tuple[int | None, int | None]
) -> list[dict[str, Any]]:
    """One server per app (all at once, on the same CPU), one load client; all stopped before returning."""
    python = [sys.executable, "-E", str(SCRIPT)]
    servers: list[subprocess.Popen[str]] = []
    with contextlib.ExitStack() as stack:
        try:
            ports = []
            for app in apps:
                env = dict(os.environ)
                env.pop("BOCADILLO_WS_NO_EXTENSIONS", None)
                if app == "pure":
                    env["BOCADILLO_WS_NO_EXTENSIONS"] = "1"
                # The server's stderr goes to a file: a pipe nobody reads could fill up and block it.
                log = stack.enter_context(tempfile.TemporaryFile("w+"))
                server = subprocess.Popen(
                    [*python, "--serve", app, "--ws", ws, "--loops", loop],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
                servers.append(server)
                _pin(server.pid, cpus[0])
                ports.append(_wait_ready(server, log))
            client = subprocess.Popen(
                [
                    *python,
                    "--load",
                    ",".join(f"ws://127.0.0.1:{port}/echo" for port in ports),
                    "--client",
                    opts.client,
                    "--server-pid",
                    ",".join(str(server.pid) for server in servers),
                    "--connections",
                    str(opts.connections),
                    "--window",
                    str(opts.window),
                    "--warmup",
                    str(opts.warmup),
                    "--duration",
                    str(opts.duration),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                _pin(client.pid, cpus[1])
                out, err = client.communicate(timeout=opts.warmup + opts.duration + 60)
            finally:
                if client.poll() is None:
                    client.kill()
                    client.communicate(timeout=STOP_TIMEOUT)
            if client.returncode != 0:
                last = err.strip().splitlines()[-1] if err.strip() else f"exit {client.returncode}"
                raise RuntimeError(f"load client failed: {last}")
            return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]
        finally:
            for server in servers:
                _stop(server)
                if server.stdout:
                    server.stdout.close()


def _busy(res: dict[str, Any], who: str) -> str:
    """``"44% CPU + 50% waiting"``: the second part is time it could have run but another process had its CPU."""
    wait = res.get(f"{who}_wait_pct")
    return f"{res[f'{who}_cpu_pct']:.0f}% CPU" + ("" if wait is None else f" + {wait:.0f}% waiting")


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (ws, loop): the median over rounds of each app's figures."""
    summary = []
    for ws, loop in dict.fromkeys((r["ws"], r["loop"]) for r in runs):
        row: dict[str, Any] = {
            "ws": ws,
            "loop": loop,
            "rate": {},
            "p50_ms": {},
            "p99_ms": {},
            "cpu_us_per_msg": {},
            "server_cpu_pct": {},
            "server_wait_pct": {},
            "client_cpu_pct": {},
            "client_wait_pct": {},
            "client_cpu_us_per_msg": {},
        }
        for app in dict.fromkeys(r["app"] for r in runs):
            ok = [r["result"] for r in runs if (r["ws"], r["loop"], r["app"]) == (ws, loop, app) and "result" in r]
            if not ok:
                continue
            row["rate"][app] = median(x["rate"] for x in ok)
            row["p50_ms"][app] = median(x["p50_ms"] for x in ok)
            row["p99_ms"][app] = median(x["p99_ms"] for x in ok)
            row["cpu_us_per_msg"][app] = median(x["server_cpu_us_per_msg"] for x in ok)
            row["server_cpu_pct"][app] = median(x["server_cpu_pct"] for x in ok)
            row["client_cpu_pct"][app] = median(x["client_cpu_pct"] for x in ok)
            for who in ("server", "client"):
                if all(x.get(f"{who}_wait_pct") is not None for x in ok):
                    row[f"{who}_wait_pct"][app] = median(x[f"{who}_wait_pct"] for x in ok)
            if all(x.get("client_cpu_us_per_msg") for x in ok):  # absent from results made before it was
                row["client_cpu_us_per_msg"][app] = median(x["client_cpu_us_per_msg"] for x in ok)
        summary.append(row)
    return summary


def _cpu_cell(row: dict[str, Any], app: str, who: str) -> str:
    cpu, wait = row.get(f"{who}_cpu_pct", {}).get(app), row.get(f"{who}_wait_pct", {}).get(app)
    if cpu is None:
        return "—"
    return f"{cpu:.0f}" + ("" if wait is None else f" (+{wait:.0f})")


def table_rows(raw: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows for the summary (shared with report.py)."""
    header = [
        "uvicorn --ws",
        "--loop",
        "app",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "server µs CPU/msg",
        "server CPU % (+ waiting)",
        "client µs CPU/msg",
        "client CPU % (+ waiting)",
        "msgs/s vs Starlette",
        "msgs/s vs raw",
        "CPU/msg: Starlette ÷ this",
    ]
    rows = []
    for row in raw["summary"]:
        for app, rate in row["rate"].items():
            star, rw = row["rate"].get("starlette"), row["rate"].get("raw")
            cpu, star_cpu = row["cpu_us_per_msg"][app], row["cpu_us_per_msg"].get("starlette")
            rows.append(
                [
                    row["ws"],
                    row["loop"],
                    app,
                    f"{rate:,.0f}",
                    f"{row['p50_ms'][app]:.2f}",
                    f"{row['p99_ms'][app]:.2f}",
                    f"{cpu:.1f}",
                    _cpu_cell(row, app, "server"),
                    f"{row['client_cpu_us_per_msg'][app]:.1f}" if app in row.get("client_cpu_us_per_msg", {}) else "—",
                    _cpu_cell(row, app, "client"),
                    common.fmt_ratio(rate / star if star else None),
                    common.fmt_ratio(rate / rw if rw else None),
                    common.fmt_ratio(star_cpu / cpu if star_cpu and cpu else None),
                ]
            )
    return header, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: websockets-sansio + asyncio, 1 round, ~1 s each"
    )
    parser.add_argument("--ws", default=",".join(WS_IMPLS), help="uvicorn --ws implementations (comma list)")
    parser.add_argument("--loops", default=",".join(LOOPS), help="event loops (comma list)")
    parser.add_argument("--apps", default=",".join(APPS), help="comma list of " + ", ".join(APPS))
    parser.add_argument("--rounds", type=int, help="runs per app and config, median taken (default 3)")
    parser.add_argument("--connections", type=int, help="concurrent connections (default 50)")
    parser.add_argument("--window", type=int, help="messages in flight per connection (default 16)")
    parser.add_argument("--warmup", type=float, help="seconds before counting (default 0.5)")
    parser.add_argument("--duration", type=float, help="seconds counted per run (default 2.5)")
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="picows",
        help="load client library (default picows: under half the CPU per message of websockets)",
    )
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="run the apps' servers at the same time on the same CPU, one client loading all of them "
        "(noise from other processes then hits every app alike)",
    )
    parser.add_argument("--json", metavar="OUT", help="write the raw results here")
    # internal roles: the same script is the server and the load client
    parser.add_argument("--serve", choices=APPS, help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="URL", dest="url", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        serve(args.serve, args.ws, args.loops)
        return 0
    q = args.quick
    args.connections = args.connections or (10 if q else 50)
    args.window = args.window or (8 if q else 16)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if q else 0.5)
    args.duration = args.duration or (1.0 if q else 2.5)
    if args.url:
        run_client(args)
        return 0

    if q:
        args.ws = args.ws if args.ws != ",".join(WS_IMPLS) else "websockets-sansio"
        args.loops = args.loops if args.loops != ",".join(LOOPS) else "asyncio"
    rounds = args.rounds or (1 if q else 3)
    ws_list = [w for w in args.ws.split(",") if w]
    loops = [lp for lp in args.loops.split(",") if lp]
    apps = [a for a in args.apps.split(",") if a]
    for a in apps:
        if a not in APPS:
            parser.error(f"unknown app {a!r}")
    if "uvloop" in loops:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop not installed: skipping --loop uvloop", file=sys.stderr)
            loops.remove("uvloop")
    try:
        __import__(args.client)  # fail before starting any server
    except ImportError:
        parser.error(f"--client {args.client}: the {args.client!r} package is not installed")
    usable = sorted(os.sched_getaffinity(0))
    cpus: tuple[int | None, int | None] = (usable[0], usable[1]) if len(usable) >= 2 else (None, None)

    runs: list[dict[str, Any]] = []
    failures = 0
    total = len(ws_list) * len(loops) * rounds * (1 if args.concurrent else len(apps))
    at_once = f"{len(apps)} servers at once, " if args.concurrent else ""
    print(
        f"bench_e2e: {total} runs of ~{args.warmup + args.duration:g} s, {at_once}{args.client} client, "
        f"{args.connections} connections x {args.window} in flight per server, server CPU {cpus[0]}, "
        f"client CPU {cpus[1]}",
        file=sys.stderr,
    )
    for ws in ws_list:
        for loop in loops:
            for r in range(rounds):
                shift = r % len(apps)
                order = apps[shift:] + apps[:shift]  # rotate the order each round
                groups = [order] if args.concurrent else [[app] for app in order]
                for group in groups:
                    entries: list[dict[str, Any]] = [{"ws": ws, "loop": loop, "app": app, "round": r} for app in group]
                    try:
                        for entry, res in zip(entries, run_group(group, ws, loop, args, cpus)):
                            entry["result"] = res
                            print(
                                f"  {ws:18} {loop:8} {entry['app']:10} {res['rate']:9,.0f} msg/s  "
                                f"p50 {res['p50_ms']:6.2f} ms  p99 {res['p99_ms']:6.2f} ms  "
                                f"server {res['server_cpu_us_per_msg']:5.1f} µs CPU/msg ({_busy(res, 'server')}), "
                                f"client {res['client_cpu_us_per_msg']:5.1f} µs CPU/msg ({_busy(res, 'client')})",
                                file=sys.stderr,
                            )
                    except Exception as exc:  # one broken run must not hide the others
                        failures += 1
                        for entry in entries:
                            entry["error"] = str(exc)
                        print(f"  {ws:18} {loop:8} {','.join(group):10} FAILED: {exc}", file=sys.stderr)
                    runs += entries
    raw = {
        "bench": "e2e",
        "machine": common.machine_info(),
        "packages": common.package_versions(common.BENCH_PACKAGES),
        "config": {
            "rounds": rounds,
            "client": args.client,
            "concurrent": args.concurrent,
            "connections": args.connections,
            "window": args.window,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "cpus": cpus,
        },
        "runs": runs,
        "summary": summarize(runs),
    }
    header, rows = table_rows(raw)
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header))]
    print("\n" + "  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(raw, out, indent=1)
    if failures:
        print(f"{failures} run(s) failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
