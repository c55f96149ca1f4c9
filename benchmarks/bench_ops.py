"""Per-operation cost of every WebSocket implementation, side by side, in one process.

    python benchmarks/bench_ops.py [--quick] [--repeats R] [--sizes 100B,1KB,64KB]
                                   [--ops send_text,receive[json],...] [--impls floor,compiled,...]
                                   [--clock cpu|wall] [--json OUT]

The transport is in memory: ``receive`` is an ``async def`` returning one
prebuilt event, ``send`` an ``async def`` that does nothing. Nothing ever
suspends, so each measured loop is a coroutine driven by one
``coro.send(None)``: no event loop in the numbers. ns/call is the time of a
loop of N awaits divided by N (this thread's CPU time unless --clock wall;
nothing subtracted; the empty-loop and await-a-no-op baselines are printed
for reference). Each figure is the
median of R repeats; inside a repeat the implementations run round-robin,
in a rotating order, so machine noise hits them all alike. Before timing,
every (op, size, implementation) is checked once for the right value.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from itertools import repeat
from statistics import median
from time import perf_counter_ns, thread_time_ns
from types import SimpleNamespace
from typing import Any, cast

import _common as common

Message = dict[str, Any]
CONNECT: Message = {"type": "websocket.connect"}

# --------------------------------------------------------------------------- the transport


def drive(awaitable: Awaitable[Any]) -> Any:
    """Run a coroutine that never suspends, and return its value."""
    coro = cast(Coroutine[Any, Any, Any], awaitable)
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended: the in-memory transport must never wait")


def transport(message: Message, sent: list[Message] | None = None) -> tuple[Any, Any, Callable[[], None]]:
    """``(receive, send, connected)``: receive returns CONNECT until ``connected()``, then ``message``."""
    event = CONNECT

    async def receive() -> Message:
        return event

    if sent is None:

        async def send(msg: Message) -> None:
            return None

    else:

        async def send(msg: Message) -> None:
            sent.append(msg)

    def connected() -> None:
        nonlocal event
        event = message

    return receive, send, connected


# --------------------------------------------------------------------------- implementations


def build_floor(receive: Any, send: Any, value_type: str | None) -> Any:
    """The least any implementation can do: one ASGI call (and the codec call for JSON)."""
    import ujson

    dumps, loads = ujson.dumps, ujson.loads

    async def send_text(data: str) -> None:
        await send({"type": "websocket.send", "text": data})

    async def send_bytes(data: bytes) -> None:
        await send({"type": "websocket.send", "bytes": data})

    async def send_json(data: Any) -> None:
        text = dumps(data, ensure_ascii=False, escape_forward_slashes=False, allow_nan=False)
        await send({"type": "websocket.send", "text": text})

    async def receive_text() -> str:
        return (await receive())["text"]

    async def receive_bytes() -> bytes:
        return (await receive())["bytes"]

    async def receive_json() -> Any:
        return loads((await receive())["text"])

    ns = SimpleNamespace(
        **{f.__name__: f for f in (send_text, send_bytes, send_json, receive_text, receive_bytes, receive_json)}
    )
    if value_type is not None:  # no dispatch to pay for: receive()/send() are the typed functions
        ns.send = getattr(ns, f"send_{value_type}")
        ns.receive = getattr(ns, f"receive_{value_type}")
    return ns


def capture_litestar_scope() -> dict[str, Any]:
    """A real scope from a one-route Litestar app, run once through its TestClient.

    Litestar's ``receive_json`` reads ``scope["route_handler"]`` (for type
    decoders); a captured scope holds the real, app-registered handler.
    """
    from litestar import Litestar, websocket
    from litestar import WebSocket as LitestarWebSocket
    from litestar.testing import TestClient

    captured: dict[str, Any] = {}

    # This module has postponed annotations: name the type for Litestar's signature parsing.
    @websocket("/ws", signature_namespace={"LitestarWebSocket": LitestarWebSocket})
    async def handler(socket: LitestarWebSocket) -> None:
        captured.update(socket.scope)
        await socket.accept()
        await socket.close()

    with TestClient(Litestar([handler])) as client, client.websocket_connect("/ws"):
        pass
    if "route_handler" not in captured:
        raise RuntimeError("could not capture a Litestar scope")
    captured["route_handler"].resolve_type_decoders()  # memoized: resolve outside the timed loops
    return captured


@dataclass
class Impl:
    name: str
    build: Callable[[Any, Any, str | None], Any]  # (receive, send, value_type) -> an accepted object
    dispatch: bool  # whether receive()/send() are the typed ones (bocadillo_ws and the floor)


def make_impls(names: tuple[str, ...]) -> tuple[list[Impl], dict[str, str]]:
    """The implementations asked for that exist here, and why the others are skipped."""
    impls: list[Impl] = []
    skipped: dict[str, str] = {}

    for name in names:
        if name == "floor":
            impls.append(Impl(name, build_floor, True))
        elif name == "starlette":
            from starlette.websockets import WebSocket as StarletteWebSocket

            impls.append(Impl(name, accepting(StarletteWebSocket, common.SCOPE), False))
        elif name == "litestar":
            try:
                from litestar.connection import WebSocket as LitestarWebSocket

                scope = capture_litestar_scope()
            except ImportError as exc:
                skipped[name] = f"litestar not installed ({exc})"
                continue
            impls.append(Impl(name, accepting(LitestarWebSocket, scope), False))
        else:
            cls = common.bocadillo_class("pure" if name == "pure" else "compiled")
            if cls is None:
                skipped[name] = "the compiled extension is not importable"
                continue
            codec = "orjson" if name == "orjson" else "ujson"
            impls.append(Impl(name, accepting(cls, common.SCOPE, typed=True, json_codec=codec), True))
    return impls, skipped


def accepting(
    cls: Any, scope: dict[str, Any], typed: bool = False, **options: Any
) -> Callable[[Any, Any, str | None], Any]:
    """A builder of accepted ``cls`` objects; ``typed`` classes also get ``value_type``."""

    def build(receive: Any, send: Any, value_type: str | None) -> Any:
        extra = {"value_type": value_type} if typed else {}
        ws = cls(dict(scope), receive, send, **options, **extra)
        drive(ws.accept())  # through the transport: CONNECT in, websocket.accept out
        return ws

    return build


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    op: str  # "send_text", ..., or a dispatch op like "receive[json]"
    size: str
    direct: str  # the typed method behind the op
    value_type: str | None  # set for dispatch ops
    event: Message  # what receive() returns
    arg: Any  # what send ops send
    expected: Any  # what receive ops must return


def make_case(op: str, size: str, doc: Any) -> Case:
    direct, value_type = common.split_dispatch(op)
    text = common.dumps_compact(doc)
    data = text.encode("utf-8")
    kind = direct.split("_")[1]
    event: Message = {"type": "websocket.receive"}
    if kind == "bytes":
        event["bytes"] = data
    else:
        event["text"] = text  # receive_json reads a text frame
    arg = expected = {"text": text, "bytes": data, "json": doc}[kind]
    return Case(op, size, direct, value_type, event, arg, expected)


def bound_op(obj: Any, case: Case) -> Callable[..., Awaitable[Any]]:
    if case.value_type is None:
        return getattr(obj, case.direct)  # type: ignore[no-any-return]
    return getattr(obj, case.direct.split("_")[0])  # type: ignore[no-any-return]


def verify(impl: Impl, case: Case) -> None:
    """One call, checked: a broken implementation must not look fast."""
    sent: list[Message] = []
    receive, send, connected = transport(case.event, sent)
    obj = impl.build(receive, send, case.value_type)
    connected()
    fn = bound_op(obj, case)
    if case.direct.startswith("receive"):
        got = drive(fn())
        if got != case.expected or type(got) is not type(case.expected):
            raise AssertionError(f"{impl.name} {case.op} {case.size}: wrong value {str(got)[:80]!r}")
        return
    before = len(sent)
    drive(fn(case.arg))
    if len(sent) != before + 1:
        raise AssertionError(f"{impl.name} {case.op} {case.size}: sent {len(sent) - before} events")
    event = sent[-1]
    key, other = ("bytes", "text") if case.direct == "send_bytes" else ("text", "bytes")
    payload = event.get(key)
    ok = event.get("type") == "websocket.send" and event.get(other) is None
    if case.direct == "send_json":
        ok = ok and isinstance(payload, str) and json.loads(payload) == case.expected
    else:
        ok = ok and payload == case.expected
    if not ok:
        raise AssertionError(f"{impl.name} {case.op} {case.size}: wrong event {str(event)[:120]}")


# --------------------------------------------------------------------------- timing


async def _send_loop(fn: Callable[[Any], Awaitable[Any]], arg: Any, times: Iterator[None]) -> None:
    for _ in times:
        await fn(arg)


async def _receive_loop(fn: Callable[[], Awaitable[Any]], times: Iterator[None]) -> None:
    for _ in times:
        await fn()


async def _empty_loop(times: Iterator[None]) -> None:
    for _ in times:
        pass


async def _noop(arg: Any = None) -> None:
    return None


Runner = Callable[[Iterator[None]], Coroutine[Any, Any, None]]


def make_runner(impl: Impl, case: Case) -> Runner:
    receive, send, connected = transport(case.event)
    obj = impl.build(receive, send, case.value_type)
    connected()
    fn = bound_op(obj, case)
    if case.direct.startswith("receive"):
        if drive(fn()) != case.expected:  # the very object that is timed, checked once
            raise AssertionError(f"{impl.name} {case.op} {case.size}: wrong value")
        return lambda times: _receive_loop(fn, times)
    arg = case.arg
    return lambda times: _send_loop(fn, arg, times)


# The loops never block, so this thread's CPU time is their wall time minus the time
# other processes held the CPU: on a busy 2-core machine, far steadier. --clock wall
# gives plain wall time.
CLOCKS: dict[str, Callable[[], int]] = {"cpu": thread_time_ns, "wall": perf_counter_ns}
clock = CLOCKS["cpu"]


def time_loop(runner: Runner, n: int) -> float:
    """ns per iteration of one loop of ``n`` awaits (GC paused: its pauses are not the op's cost)."""
    coro = runner(repeat(None, n))
    gc.disable()
    try:
        start = clock()
        drive(coro)
        elapsed = clock() - start
    finally:
        gc.enable()
    return elapsed / n


def calibrate(runner: Runner, loop_ns: float) -> int:
    """Loop length so that this runner's loop takes about ``loop_ns`` (also warms caches)."""
    n = 1
    while time_loop(runner, n) * n < 1e6 and n < 65_536:  # grow until a loop takes 1 ms
        n *= 4
    per_call = min(time_loop(runner, n) for _ in range(3))  # the least disturbed of three
    return max(10, min(5_000_000, int(loop_ns / max(per_call, 1.0))))


def measure(
    impls: list[Impl], cases: list[Case], repeats: int, loop_ms: float
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    plan = []
    for case in cases:
        members = [impl for impl in impls if case.value_type is None or impl.dispatch]
        for impl in members:
            verify(impl, case)
        runners = {impl.name: make_runner(impl, case) for impl in members}
        # Each implementation gets its own N, so every timed loop lasts about loop_ms:
        # all are exposed alike to the machine's noise.
        lengths = {name: calibrate(runner, loop_ms * 1e6) for name, runner in runners.items()}
        plan.append((case, runners, lengths))
    samples: dict[tuple[str, str, str], list[float]] = {}
    baselines: dict[str, list[float]] = {"empty loop": [], "await a no-op": []}
    for r in range(repeats):
        gc.collect()
        baselines["empty loop"].append(time_loop(_empty_loop, 200_000))
        baselines["await a no-op"].append(time_loop(lambda t: _send_loop(_noop, None, t), 200_000))
        for case, runners, lengths in plan:
            names = list(runners)
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:  # round-robin, rotating who goes first
                samples.setdefault((case.size, case.op, name), []).append(time_loop(runners[name], lengths[name]))
        print(f"\r  repeat {r + 1}/{repeats}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    n_of = {(case.size, case.op, name): n for case, _, lengths in plan for name, n in lengths.items()}
    results = [
        {"size": size, "op": op, "impl": impl, "n": n_of[(size, op, impl)], "samples_ns": values}
        for (size, op, impl), values in samples.items()
    ]
    return results, {name: median(values) for name, values in baselines.items()}


# --------------------------------------------------------------------------- output

RATIO_COLUMNS = (
    ("star/comp", lambda t, s, o: common.ratio(t, s, o, "starlette", "compiled")),
    ("comp/floor", lambda t, s, o: common.ratio(t, s, o, "compiled", "floor")),
    ("pure/comp", lambda t, s, o: common.ratio(t, s, o, "pure", "compiled")),
    ("disp/direct", lambda t, s, o: common.dispatch_ratio(t, s, o, "compiled")),
    ("lite/orjson", lambda t, s, o: common.ratio(t, s, o, "litestar", "orjson")),
)


def table_rows(raw: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: op, size, ns/call per impl, then the ratios (shared with report.py)."""
    table = common.op_medians(raw)
    samples = common.op_samples(raw)  # ratios: per repeat, then the median (see common.paired_ratio)
    impls = [name for name in common.IMPLS if any(key[2] == name for key in table)]
    header = ["op", "size", *impls, *(name for name, _ in RATIO_COLUMNS)]
    rows = []
    for size in common.SIZE_NAMES:
        for op in common.ALL_OPS:
            if not any((size, op, impl) in table for impl in impls):
                continue
            cells = [op, size, *(common.fmt_ns(table.get((size, op, impl))) for impl in impls)]
            cells += [common.fmt_ratio(fn(samples, size, op)) for _, fn in RATIO_COLUMNS]
            rows.append(cells)
    return header, rows


def print_table(raw: dict[str, Any]) -> None:
    header, rows = table_rows(raw)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for row in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (3 repeats, 5 ms loops)")
    parser.add_argument("--repeats", type=int, help="repeats per figure, median taken (default 11; 3 with --quick)")
    parser.add_argument("--loop-ms", type=float, help="target duration of one timed loop (default 20; 5 with --quick)")
    parser.add_argument(
        "--sizes", default=",".join(common.SIZE_NAMES), help="comma list of " + ", ".join(common.SIZE_NAMES)
    )
    parser.add_argument("--ops", default=",".join(common.ALL_OPS), help="comma list of " + ", ".join(common.ALL_OPS))
    parser.add_argument("--impls", default=",".join(common.IMPLS), help="comma list of " + ", ".join(common.IMPLS))
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="cpu",
        help="cpu: this thread's CPU time (default; ignores time other processes took), wall: perf_counter",
    )
    parser.add_argument("--json", metavar="OUT", help="write the raw results (every sample) here")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    repeats = args.repeats or (3 if args.quick else 11)
    loop_ms = args.loop_ms or (5.0 if args.quick else 20.0)

    def pick(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
        chosen = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in chosen if v not in allowed]
        if bad:
            parser.error(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
        return chosen

    sizes = pick(args.sizes, common.SIZE_NAMES, "size")
    ops = pick(args.ops, common.ALL_OPS, "op")
    impl_names = pick(args.impls, common.IMPLS, "implementation")

    common.check_installed_package()
    import bocadillo_ws

    impls, skipped = make_impls(impl_names)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    docs = common.payloads()
    cases = [make_case(op, size, docs[size]) for size in sizes for op in ops]
    info = common.machine_info()
    print(
        f"bench_ops: Python {info['python']}, bocadillo_ws backend {bocadillo_ws.BACKEND}, "
        f"{len(cases)} cases x {len(impls)} impls, {repeats} repeats, ~{loop_ms:g} ms loops",
        file=sys.stderr,
    )
    results, baselines = measure(impls, cases, repeats, loop_ms)
    raw: dict[str, Any] = {
        "bench": "ops",
        "machine": info,
        "packages": common.package_versions(common.BENCH_PACKAGES),
        "config": {
            "repeats": repeats,
            "loop_ms": loop_ms,
            "clock": args.clock,
            "sizes": sizes,
            "ops": ops,
            "impls": [i.name for i in impls],
        },
        "payload_bytes": {size: len(common.dumps_compact(docs[size]).encode()) for size in sizes},
        "skipped": skipped,
        "baselines_ns": baselines,
        "results": results,
    }
    print(f"\nns/call, median of {repeats}, {args.clock} clock (Python {info['python']}; nothing subtracted)")
    print("baselines: " + ", ".join(f"{name} {value:.1f} ns" for name, value in baselines.items()))
    print("payloads: " + ", ".join(f"{size} = {n} bytes" for size, n in raw["payload_bytes"].items()))
    print_table(raw)
    print(
        "\nratios (each the median of the per-repeat ratios): star/comp = Starlette ns / compiled ns (x faster); comp/floor = compiled ns / floor ns;"
        " pure/comp; disp/direct = receive()/send() ns / the typed method's ns (compiled);"
        " lite/orjson = Litestar ns / compiled-with-orjson ns"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(raw, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
