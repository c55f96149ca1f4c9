"""Load and soak: N concurrent connections x M JSON messages through a real uvicorn server.

    python load/soak.py            # 1,000 connections x 1,000 messages (about 1M round trips)
    python load/soak.py --quick    # 100 x 100, under a minute

The server is load/app.py (a bocadillo_ws JSON echo: ``async with ws`` /
``async for`` / ``ws.send``) under uvicorn in a subprocess on 127.0.0.1, on
a free port. The client is another process (``--workers`` of them) using
the ``websockets`` asyncio client (no proxy, no keepalive pings). Each
connection sends its messages one at a time (``--window`` in flight), each
``{"cid", "seq", "body", "crc"}`` with ``crc = zlib.crc32(body)``, the body
derived from (cid, seq) so it can be checked without being kept.

Checked: 0 lost, 0 reordered, 0 corrupted (client side); the server counted
every message, found no bad checksum and no exception, and every connection
ended through the clean path (``disconnect 1000``). Reported: messages/s,
p50/p99/max round-trip latency, the server's RSS (start, peak VmHWM, end,
series), open fds. Bounded by ``--timeout``; the subprocesses are killed on
the way out. Exit status 0 when every check passes.

Run it from the repository root with the environment that has
``bocadillo_ws`` installed (``/tmp/dev/bin/python load/soak.py``); the
server prints which backend it runs (``--pure`` for the pure-Python one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import multiprocessing
import resource
import sys
import tempfile
import time
import traceback
import zlib
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import RSSSampler, cpu_seconds, mib, open_fds, percentile, raise_fd_limit, server_process

try:
    import orjson

    loads = orjson.loads
except ImportError:  # the client's own parsing: any correct one will do
    loads = json.loads

RECV_TIMEOUT = 60.0  # one reply; far above any healthy latency
PAD = 'é✓/"\\ x\u2028日本'


def body_for(cid: int, seq: int) -> str:
    n = (cid * 131 + seq * 17) % 64
    return f"c{cid}s{seq}|" + (PAD * (n // len(PAD) + 1))[:n]


def frame_for(cid: int, seq: int) -> tuple[str, int]:
    body = body_for(cid, seq)
    crc = zlib.crc32(body.encode("utf-8"))
    return json.dumps({"cid": cid, "seq": seq, "body": body, "crc": crc}, ensure_ascii=False), crc


# --------------------------------------------------------------------------- the client process


async def one_connection(url: str, cid: int, messages: int, window: int, gate: asyncio.Semaphore, out: dict[str, Any]) -> None:
    from websockets.asyncio.client import connect

    options: dict[str, Any] = {"ping_interval": None, "open_timeout": 60, "close_timeout": 30, "compression": None}
    if "proxy" in inspect.signature(connect).parameters:
        options["proxy"] = None
    latencies: array[float] = out["latencies"]
    async with gate:  # bounded handshakes in flight
        conn = await connect(url, **options)
    sent_at: dict[int, float] = {}
    expected = 0
    sent = 0
    try:
        while expected < messages:
            while sent < messages and sent - expected < window:
                text, _ = frame_for(cid, sent)
                sent_at[sent] = time.perf_counter()
                await conn.send(text)
                sent += 1
            raw = await asyncio.wait_for(conn.recv(), RECV_TIMEOUT)
            now = time.perf_counter()
            try:
                reply = loads(raw)
                seq = reply["seq"]
                ok = (
                    reply["cid"] == cid
                    and reply["body"] == body_for(cid, seq)
                    and reply["crc"] == zlib.crc32(reply["body"].encode("utf-8"))
                    and len(reply) == 4
                )
            except Exception:
                out["corrupted"] += 1
                expected += 1
                continue
            if not ok:
                out["corrupted"] += 1
            if seq == expected:
                out["received"] += 1
                latencies.append(now - sent_at.pop(seq))
                expected += 1
            elif seq > expected:  # replies skipped: lost, unless they turn up later (reordered)
                out["lost"] += seq - expected
                out["received"] += 1
                latencies.append(now - sent_at.pop(seq))
                for missing in range(expected, seq):
                    out["skipped"].add((cid, missing))
                expected = seq + 1
            else:
                out["reordered"] += 1
                if (cid, seq) in out["skipped"]:
                    out["skipped"].discard((cid, seq))
                    out["lost"] -= 1
        await asyncio.wait_for(conn.close(), 30)
        out["closed_ok"] += 1
    except Exception as exc:
        out["lost"] += messages - expected
        key = f"{type(exc).__name__}: {exc}"[:200]
        out["errors"][key] = out["errors"].get(key, 0) + 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 10)


async def client_main(url: str, cids: range, messages: int, window: int, ramp: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "received": 0,
        "lost": 0,
        "reordered": 0,
        "corrupted": 0,
        "closed_ok": 0,
        "errors": {},
        "skipped": set(),
        "latencies": array("d"),
    }
    gate = asyncio.Semaphore(ramp)
    start = time.time()
    await asyncio.gather(*(one_connection(url, cid, messages, window, gate, out) for cid in cids))
    out["start"], out["end"] = start, time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu"] = usage.ru_utime + usage.ru_stime
    out["skipped"] = len(out["skipped"])
    out["latencies"] = out["latencies"].tobytes()
    return out


def client_process(url: str, cids: range, messages: int, window: int, ramp: int, results: Any) -> None:
    try:
        results.put(asyncio.run(client_main(url, cids, messages, window, ramp)))
    except BaseException:
        results.put({"crash": traceback.format_exc()})


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> int:
    fd_limit = raise_fd_limit()
    need = args.connections * 2 + 100
    if fd_limit < need:
        print(f"warning: RLIMIT_NOFILE is {fd_limit}, {need} descriptors may be needed", file=sys.stderr)
    total = args.connections * args.messages
    deadline = time.monotonic() + args.timeout
    failures: list[str] = []
    report: dict[str, Any] = {
        "connections": args.connections,
        "messages_per_connection": args.messages,
        "window": args.window,
        "workers": args.workers,
        "codec": args.codec,
        "uvicorn_ws": args.ws,
        "fd_limit": fd_limit,
    }
    with tempfile.TemporaryDirectory(prefix="bocadillo-soak-") as tmp, server_process(
        Path(tmp), codec=args.codec, ws=args.ws, pure=args.pure
    ) as server:
        idle = server.stats()
        report["server_backend"] = idle["backend"]
        report["server_package"] = idle["bocadillo_ws"]
        report["server_rss_start"] = server.status()["VmRSS"]
        print(
            f"server pid {server.proc.pid} on {server.base}: backend={idle['backend']} ({idle['bocadillo_ws']}), "
            f"codec={args.codec}, uvicorn ws={args.ws}; RSS {mib(report['server_rss_start'])}",
            flush=True,
        )
        print(f"load: {args.connections} connections x {args.messages} messages = {total:,}, {args.workers} client process(es)", flush=True)

        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        url = f"{server.base}/echo"
        slices = [range(w, args.connections, args.workers) for w in range(args.workers)]
        workers = [
            ctx.Process(target=client_process, args=(url, s, args.messages, args.window, args.ramp, results), daemon=True)
            for s in slices
        ]
        outs: list[dict[str, Any]] = []
        peak_fds = 0
        try:
            with RSSSampler(server.proc.pid, interval=1.0) as sampler:
                for worker in workers:
                    worker.start()
                last = time.monotonic()
                while len(outs) < len(workers):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        failures.append(f"timed out after {args.timeout}s")
                        break
                    try:
                        outs.append(results.get(timeout=min(remaining, 1.0)))
                    except Exception:  # queue.Empty
                        pass
                    try:
                        peak_fds = max(peak_fds, open_fds(server.proc.pid))
                    except OSError:
                        pass
                    if time.monotonic() - last >= 10:
                        last = time.monotonic()
                        try:
                            live = server.stats()
                            print(f"  ... {live['messages']:,} echoed, {live['live']} live, RSS {mib(server.status()['VmRSS'])}", flush=True)
                        except OSError as exc:
                            print(f"  ... server unreachable: {exc}", flush=True)
                    if server.proc.poll() is not None:
                        failures.append(f"the server died with {server.proc.returncode}")
                        break
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.kill()
                worker.join(5)

        crashes = [o["crash"] for o in outs if "crash" in o]
        outs = [o for o in outs if "crash" not in o]
        for crash in crashes:
            failures.append(f"a client process crashed:\n{crash}")

        # The server side, once every connection has ended (bounded).
        stats = server.stats()
        settle = time.monotonic() + 10
        while stats["live"] and time.monotonic() < settle:
            time.sleep(0.1)
            stats = server.stats()
        status = server.status()
        report["server_rss_end"] = status["VmRSS"]
        report["server_rss_peak"] = status["VmHWM"]
        report["server_threads"] = status.get("Threads")
        report["server_fds_peak"] = peak_fds
        report["server_cpu_s"] = round(cpu_seconds(server.proc.pid), 2)
        report["server_rss_series_mib"] = [round(rss / (1 << 20), 1) for _, rss in sampler.samples[:: max(1, len(sampler.samples) // 20)]]
        code, took = server.terminate(20)
        final = server.final_stats()
        report["server_exit_code"] = code
        report["server_shutdown_s"] = round(took, 2)
        report["server_stats"] = final or stats
        log = server.log()

    received = sum(o["received"] for o in outs)
    latencies = sorted(x for o in outs for x in array("d", o["latencies"]))
    start = min((o["start"] for o in outs), default=0.0)
    end = max((o["end"] for o in outs), default=0.0)
    elapsed = max(end - start, 1e-9)
    errors: dict[str, int] = {}
    for o in outs:
        for key, n in o["errors"].items():
            errors[key] = errors.get(key, 0) + n
    report.update(
        {
            "sent_expected": total,
            "received": received,
            "lost": sum(o["lost"] for o in outs) + (total - received if len(outs) < len(workers) else 0),
            "reordered": sum(o["reordered"] for o in outs),
            "corrupted": sum(o["corrupted"] for o in outs),
            "client_errors": errors,
            "connections_closed_cleanly": sum(o["closed_ok"] for o in outs),
            "elapsed_s": round(elapsed, 2),
            "client_cpu_s": round(sum(o.get("cpu", 0.0) for o in outs), 2),
            "messages_per_s": round(received / elapsed),
            "latency_ms": {
                "p50": round(percentile(latencies, 50) * 1e3, 3),
                "p99": round(percentile(latencies, 99) * 1e3, 3),
                "max": round((latencies[-1] if latencies else float("nan")) * 1e3, 3),
            },
        }
    )

    server_stats = report["server_stats"]
    for name in ("lost", "reordered", "corrupted"):
        if report[name]:
            failures.append(f"{report[name]} {name}")
    if received != total:
        failures.append(f"received {received:,} of {total:,}")
    if errors:
        failures.append(f"client errors: {errors}")
    if server_stats["messages"] != total:
        failures.append(f"the server echoed {server_stats['messages']:,} of {total:,}")
    if server_stats["bad_checksums"]:
        failures.append(f"the server saw {server_stats['bad_checksums']} bad checksums")
    if server_stats["errors"]:
        failures.append(f"server-side errors: {server_stats['errors']}")
    if server_stats["opened"] != args.connections or server_stats["ended"] != args.connections:
        failures.append(f"server connections: opened {server_stats['opened']}, ended {server_stats['ended']}")
    if server_stats["exits"] != {"disconnect 1000": args.connections}:
        failures.append(f"server exits: {server_stats['exits']}")
    if not server.graceful(code) or final is None:
        failures.append(f"server exit code {code}, stats file {'written' if final else 'missing'}: not a graceful shutdown")
    if "Traceback" in log or "ERROR" in log:
        failures.append(f"the server logged errors:\n{log[-3000:]}")
    report["failures"] = failures

    print(
        f"\n{received:,} of {total:,} messages in {elapsed:.1f}s: {report['messages_per_s']:,} msg/s; "
        f"latency p50 {report['latency_ms']['p50']} ms, p99 {report['latency_ms']['p99']} ms, max {report['latency_ms']['max']} ms"
    )
    print(f"lost {report['lost']}, reordered {report['reordered']}, corrupted {report['corrupted']}, client errors {sum(errors.values())}")
    print(
        f"server: backend {report['server_backend']}, RSS start {mib(report['server_rss_start'])}, "
        f"peak (VmHWM) {mib(report['server_rss_peak'])}, end {mib(report['server_rss_end'])}, "
        f"peak fds {peak_fds}, errors {server_stats['errors']}, bad checksums {server_stats['bad_checksums']}, "
        f"exits {server_stats['exits']}, exit code {code} after SIGTERM ({report['server_shutdown_s']}s)"
    )
    print(f"server RSS series (MiB): {report['server_rss_series_mib']}")
    print(f"CPU: server {report['server_cpu_s']}s, client {report['client_cpu_s']}s (2 cores; the busier one bounds msg/s)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    if failures:
        print("\nFAILED:\n- " + "\n- ".join(failures))
        return 1
    print("\nOK: 0 lost, 0 reordered, 0 corrupted, 0 server errors")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", "-n", type=int, default=1000)
    parser.add_argument("--messages", "-m", type=int, default=1000, help="per connection")
    parser.add_argument("--quick", action="store_true", help="100 x 100 (overrides -n/-m), a 120 s bound")
    parser.add_argument("--window", type=int, default=1, help="messages in flight per connection")
    parser.add_argument("--workers", type=int, default=1, help="client processes")
    parser.add_argument("--ramp", type=int, default=100, help="handshakes in flight at once, per client process")
    parser.add_argument("--codec", default="ujson", choices=["ujson", "orjson", "json"])
    parser.add_argument("--ws", default="websockets-sansio", choices=["websockets-sansio", "websockets"])
    parser.add_argument("--pure", action="store_true", help="run the server on the pure-Python backend")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the whole load (default 1800, 120 with --quick)")
    parser.add_argument("--json-out", help="also write the report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.messages = 100, 100
    if args.timeout is None:
        args.timeout = 120.0 if args.quick else 1800.0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
