"""Server shutdown under load: SIGTERM to uvicorn while clients are mid-conversation.

    python load/faults.py                 # both uvicorn WebSocket implementations
    python load/faults.py --ws websockets-sansio --clients 500

For each uvicorn WebSocket implementation, load/app.py (a bocadillo_ws JSON
echo) runs in a subprocess on 127.0.0.1 (a free port). ``--clients``
connections echo JSON as fast as they can (each reply checked: cid, seq,
checksum), ``--slow`` more are inside a slow handler (``{"slow": 2}``: the
view sleeps, then echoes) when the server gets SIGTERM. Then:

- every client's connection must end, bounded, and each records how: the
  close frame's code and reason (uvicorn documents 1012, "service restart",
  for a shutdown), or no close frame at all;
- a client connecting after the SIGTERM must not be accepted;
- the server must exit gracefully (uvicorn re-raises the SIGTERM after its
  graceful shutdown, so exit status -15 with the stats file written counts
  as graceful), bounded;
- the application's ``async with`` blocks must all have ended through the
  disconnect path (``exits``: ``"disconnect <code>"``; no exception,
  ``errors == {}``), and ``opened == ended``.

Prints the outcomes per implementation; exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import signal
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import mib, raise_fd_limit, server_process
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

OPTIONS: dict[str, Any] = {"ping_interval": None, "open_timeout": 20, "close_timeout": 10, "compression": None}
if "proxy" in inspect.signature(connect).parameters:
    OPTIONS["proxy"] = None

TIMEOUT = 20.0  # every wait after the SIGTERM
SHUTDOWN_CODE = 1012  # uvicorn's close code on shutdown ("service restart")


def frame(cid: int, seq: int) -> str:
    body = f"c{cid}s{seq}é✓/" * (1 + (cid + seq) % 5)
    return json.dumps({"cid": cid, "seq": seq, "body": body, "crc": zlib.crc32(body.encode())}, ensure_ascii=False)


def closed_how(exc: ConnectionClosed) -> str:
    if exc.rcvd is None:
        return f"no close frame ({type(exc).__name__})"
    return f"close {exc.rcvd.code} {exc.rcvd.reason!r}"


async def steady(url: str, cid: int, ready: asyncio.Event, results: dict[str, Any]) -> None:
    """Echo until the server goes away; every reply checked."""
    async with connect(url, **OPTIONS) as conn:
        results["connected"] += 1
        seq = 0
        try:
            while True:
                await conn.send(frame(cid, seq))
                reply = json.loads(await asyncio.wait_for(conn.recv(), TIMEOUT))
                if reply != json.loads(frame(cid, seq)):
                    results["corrupted"] += 1
                seq += 1
                results["echoed"] += 1
                if seq == 5:
                    ready.set()
        except ConnectionClosed as exc:
            results["ends"][closed_how(exc)] += 1
        except Exception as exc:
            results["ends"][f"error {type(exc).__name__}: {exc}"[:120]] += 1


async def slow(url: str, cid: int, results: dict[str, Any]) -> None:
    """Inside a slow handler (the view sleeps 2 s) when the SIGTERM arrives."""
    async with connect(url, **OPTIONS) as conn:
        results["connected"] += 1
        await conn.send(json.dumps({"slow": 2.0, "cid": cid}))
        try:
            reply = await asyncio.wait_for(conn.recv(), TIMEOUT)
            results["ends"][f"slow reply arrived: {reply[:40]}"] += 1
        except ConnectionClosed as exc:
            results["ends"][closed_how(exc)] += 1
        except Exception as exc:
            results["ends"][f"error {type(exc).__name__}: {exc}"[:120]] += 1


async def late(url: str) -> str:
    """A connection attempted after the SIGTERM."""
    try:
        async with connect(url, **{**OPTIONS, "open_timeout": 5}) as conn:
            await conn.send("{}")
            try:
                await asyncio.wait_for(conn.recv(), 5)
                return "accepted and echoed (unexpected)"
            except ConnectionClosed as exc:
                return f"accepted, then {closed_how(exc)}"
    except InvalidStatus as exc:
        return f"refused: HTTP {exc.response.status_code}"
    except (OSError, TimeoutError) as exc:
        return f"refused: {type(exc).__name__}"
    except ConnectionClosed as exc:
        return f"handshake cut: {closed_how(exc)}"


async def scenario(server: Any, clients: int, slow_clients: int) -> dict[str, Any]:
    url = f"{server.base}/echo"
    results: dict[str, Any] = {"connected": 0, "echoed": 0, "corrupted": 0, "ends": Counter()}
    slow_results: dict[str, Any] = {"connected": 0, "ends": Counter()}
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [asyncio.create_task(steady(url, cid, readies[cid], results)) for cid in range(clients)]
    # Open in a bounded ramp so the SIGTERM finds everyone mid-conversation.
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    slow_tasks = [asyncio.create_task(slow(url, 10_000 + k, slow_results)) for k in range(slow_clients)]
    deadline = time.monotonic() + 20
    while slow_results["connected"] < slow_clients and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # the slow views are asleep now
    before = server.stats()
    rss = server.status()

    sigterm_at = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    # uvicorn notices the signal on its next tick (0.1 s) and closes its listeners.
    await asyncio.sleep(0.3)
    late_outcome = await late(url)
    done, pending = await asyncio.wait([*tasks, *slow_tasks], timeout=TIMEOUT)
    clients_done_s = time.monotonic() - sigterm_at
    for task in pending:
        task.cancel()
    errors = [repr(t.exception()) for t in done if t.exception() is not None]

    exit_deadline = sigterm_at + TIMEOUT
    while server.proc.poll() is None and time.monotonic() < exit_deadline:
        await asyncio.sleep(0.05)
    code = server.proc.poll()
    exit_s = time.monotonic() - sigterm_at
    return {
        "steady": results,
        "slow": slow_results,
        "late_client": late_outcome,
        "pending_clients": len(pending),
        "client_task_errors": errors,
        "clients_done_s": round(clients_done_s, 2),
        "server_before_sigterm": before,
        "server_rss_at_sigterm": rss["VmRSS"],
        "server_exit_code": code,
        "server_exit_s": round(exit_s, 2),
    }


def check(outcome: dict[str, Any], final: dict[str, Any] | None, clients: int, slow_clients: int, graceful: bool, log: str) -> list[str]:
    failures = []
    steady, slow = outcome["steady"], outcome["slow"]
    if steady["connected"] != clients or slow["connected"] != slow_clients:
        failures.append(f"connected {steady['connected']}/{clients} steady, {slow['connected']}/{slow_clients} slow")
    if steady["corrupted"]:
        failures.append(f"{steady['corrupted']} corrupted replies")
    expected_close = f"close {SHUTDOWN_CODE} ''"
    if steady["ends"] != {expected_close: clients}:
        failures.append(f"steady clients ended {dict(steady['ends'])}, expected all {expected_close!r}")
    if slow["ends"] != {expected_close: slow_clients}:
        failures.append(f"slow clients ended {dict(slow['ends'])}, expected all {expected_close!r}")
    if outcome["pending_clients"] or outcome["client_task_errors"]:
        failures.append(f"clients still open {outcome['pending_clients']}, errors {outcome['client_task_errors']}")
    if not outcome["late_client"].startswith("refused"):
        failures.append(f"late client: {outcome['late_client']}")
    if not graceful:
        failures.append(f"server exit code {outcome['server_exit_code']}: not a graceful shutdown")
    if final is None:
        failures.append("no stats file: the lifespan shutdown did not complete")
    else:
        if final["errors"]:
            failures.append(f"server-side errors: {final['errors']}")
        if final["opened"] != final["ended"]:
            failures.append(f"server: opened {final['opened']}, ended {final['ended']}")
        if final["bad_checksums"]:
            failures.append(f"server: {final['bad_checksums']} bad checksums")
        if any(not how.startswith("disconnect ") for how in final["exits"]):
            failures.append(f"server exits: {final['exits']}")
    if "Traceback" in log:
        failures.append(f"the server logged a traceback:\n{log[-3000:]}")
    return failures


def run_one(ws: str, args: argparse.Namespace, tmp: Path) -> list[str]:
    print(f"\n== uvicorn ws={ws}: {args.clients} echoing + {args.slow} slow clients, then SIGTERM", flush=True)
    with server_process(tmp, ws=ws, codec=args.codec, pure=args.pure) as server:
        idle = server.stats()
        print(f"server pid {server.proc.pid} on {server.base}, backend={idle['backend']} ({idle['bocadillo_ws']})", flush=True)
        outcome = asyncio.run(asyncio.wait_for(scenario(server, args.clients, args.slow), args.timeout))
        code = server.proc.poll()
        graceful = code is not None and server.graceful(code)
        final = server.final_stats()
        log = server.log()
    steady, slow = outcome["steady"], outcome["slow"]
    print(f"before SIGTERM: {outcome['server_before_sigterm']['messages']:,} echoed, {outcome['server_before_sigterm']['live']} live; server RSS {mib(outcome['server_rss_at_sigterm'])}")
    print(f"echoing clients ({steady['connected']}): {dict(steady['ends'])}; corrupted {steady['corrupted']}")
    print(f"slow clients ({slow['connected']}): {dict(slow['ends'])}")
    print(f"late client: {outcome['late_client']}")
    print(f"all clients done {outcome['clients_done_s']}s after SIGTERM; server exited with {outcome['server_exit_code']} after {outcome['server_exit_s']}s (graceful: {graceful})")
    if final:
        print(f"server side: opened {final['opened']}, ended {final['ended']}, exits {final['exits']}, errors {final['errors']}")
    failures = check(outcome, final, args.clients, args.slow, graceful, log)
    for failure in failures:
        print(f"FAILED [{ws}]: {failure}")
    if log.strip():
        print(f"server log (last lines):\n{log.strip()[-1500:]}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ws", choices=["websockets-sansio", "websockets"], action="append", help="default: both")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--codec", default="ujson", choices=["ujson", "orjson", "json"])
    parser.add_argument("--pure", action="store_true", help="run the server on the pure-Python backend")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per implementation")
    args = parser.parse_args(argv)
    raise_fd_limit()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bocadillo-faults-") as tmp:
        for ws in args.ws or ["websockets-sansio", "websockets"]:
            failures += run_one(ws, args, Path(tmp))
    print("\nOK: every client saw the shutdown close, every server view ended cleanly" if not failures else f"\n{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
