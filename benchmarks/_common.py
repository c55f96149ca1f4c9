"""Shared by the benchmark scripts: payloads, the implementations, machine facts, targets.

Importing this module needs only the standard library (``report.py`` runs on
any Python); everything that needs the benchmark venv is imported lazily.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from statistics import median
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"

# --------------------------------------------------------------------------- payloads

CHAT_TEXT = "¿Comemos a la una?"  # one non-ASCII character: the UTF-8 path is real


def chat_message(i: int = 0) -> dict[str, Any]:
    """A ~100-byte chat message, the common case for a chat server."""
    return {
        "type": "message",
        "room": "lobby",
        "user": ("ana", "bo", "carmen", "dmitri")[i % 4],
        "text": CHAT_TEXT,
        "ts": 1732540000.123 + i,
        "id": 12345 + i,
    }


def _history(target: int) -> dict[str, Any]:
    """A batch of chat messages whose compact JSON is about ``target`` bytes."""
    doc: dict[str, Any] = {"type": "history", "room": "lobby", "messages": []}
    while len(dumps_compact(doc).encode()) < target:
        doc["messages"].append(chat_message(len(doc["messages"])))
    return doc


def dumps_compact(doc: Any) -> str:
    """The wire text every implementation sends (Starlette's own ``json.dumps`` call)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def payloads() -> dict[str, Any]:
    """Size name -> JSON document. Text ops use its JSON text, bytes ops its UTF-8."""
    return {"100B": chat_message(), "1KB": _history(1024), "64KB": _history(64 * 1024)}


SIZE_NAMES = ("100B", "1KB", "64KB")
GATE_SIZE = "100B"  # the size the per-op targets are checked at (a chat message)

# --------------------------------------------------------------------------- ops and implementations

DIRECT_OPS = ("send_text", "send_bytes", "send_json", "receive_text", "receive_bytes", "receive_json")
# receive()/send() through the value_type dispatch, named "send[json]" etc.
DISPATCH_OPS = tuple(f"{verb}[{kind}]" for verb in ("send", "receive") for kind in ("text", "bytes", "json"))
ALL_OPS = DIRECT_OPS + DISPATCH_OPS
TEXT_BYTES_OPS = tuple(op for op in ALL_OPS if "json" not in op)

IMPLS = ("floor", "starlette", "litestar", "pure", "compiled", "orjson")
IMPL_LABELS = {
    "floor": "raw ASGI floor",
    "starlette": "Starlette",
    "litestar": "Litestar",
    "pure": "bocadillo_ws pure",
    "compiled": "bocadillo_ws compiled",
    "orjson": "compiled, orjson",
}


def split_dispatch(op: str) -> tuple[str, str | None]:
    """``"send[json]"`` -> ``("send_json", "json")``; a direct op -> ``(op, None)``."""
    if "[" not in op:
        return op, None
    verb, kind = op[:-1].split("[")
    return f"{verb}_{kind}", kind


SCOPE: dict[str, Any] = {
    "type": "websocket",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "scheme": "ws",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "root_path": "",
    "path": "/ws",
    "raw_path": b"/ws",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"upgrade", b"websocket"), (b"connection", b"upgrade")],
    "subprotocols": [],
    "state": {},
    "extensions": {"websocket.http.response": {}},
}


def bocadillo_class(backend: str) -> type[Any] | None:
    """The public ``WebSocket`` on one backend ("compiled" or "pure"), as tests/conftest.py builds it.

    None when the compiled extension is not importable.
    """
    import importlib

    import bocadillo_ws
    from bocadillo_ws._websocket import WebSocketAPI

    name = "bocadillo_ws._codec" if backend == "compiled" else "bocadillo_ws._codec_py"
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    if module.WebSocketCore is bocadillo_ws._backend.WebSocketCore:
        return bocadillo_ws.WebSocket  # the live backend: the public class itself
    from starlette.websockets import WebSocket as StarletteWebSocket

    return type("WebSocket", (WebSocketAPI, module.WebSocketCore, StarletteWebSocket), {"__module__": __name__})


def check_installed_package() -> None:
    """Refuse to measure the source tree: it may hold a stale or half-built extension."""
    import bocadillo_ws

    where = Path(bocadillo_ws.__file__).resolve()
    if REPO / "bocadillo_ws" in where.parents:
        sys.exit(
            f"bocadillo_ws is imported from the source tree ({where}): "
            "run the script by path, with bocadillo_ws installed"
        )


# --------------------------------------------------------------------------- machine facts


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
    }


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


BENCH_PACKAGES = (
    "bocadillo_ws",
    "starlette",
    "litestar",
    "msgspec",
    "ujson",
    "orjson",
    "uvicorn",
    "uvloop",
    "websockets",
    "picows",
    "wsproto",
)

# --------------------------------------------------------------------------- ratios and targets


def op_medians(raw: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    """``(size, op, impl) -> median ns/call`` from a bench_ops raw result."""
    return {(r["size"], r["op"], r["impl"]): median(r["samples_ns"]) for r in raw["results"]}


Samples = dict[tuple[str, str, str], list[float]]


def op_samples(raw: dict[str, Any]) -> Samples:
    """``(size, op, impl) -> ns/call of each repeat, in repeat order`` from a bench_ops raw result."""
    return {(r["size"], r["op"], r["impl"]): r["samples_ns"] for r in raw["results"]}


def paired_ratio(num: list[float] | None, den: list[float] | None) -> float | None:
    """The median over repeats of ``num[r] / den[r]``.

    Within one repeat the two loops ran back to back, so a slow phase of the
    machine hits both: the per-repeat ratio cancels it, where a ratio of two
    medians (taken from different repeats) would not.
    """
    if not num or not den:
        return None
    pairs = [a / b for a, b in zip(num, den) if b > 0]
    return median(pairs) if pairs else None


def ratio(samples: Samples, size: str, op: str, num: str, den: str) -> float | None:
    return paired_ratio(samples.get((size, op, num)), samples.get((size, op, den)))


def dispatch_ratio(samples: Samples, size: str, op: str, impl: str) -> float | None:
    """ns of ``receive()``/``send()`` over ns of the direct typed method, same impl."""
    direct, kind = split_dispatch(op)
    if kind is None:
        return None
    return paired_ratio(samples.get((size, op, impl)), samples.get((size, direct, impl)))


def _ops_check(
    table: Samples,
    ops: tuple[str, ...],
    num: str,
    den: str,
    size: str,
) -> tuple[float | None, str]:
    """The worst (smallest) ``num/den`` over ``ops``, and which op it was."""
    found = [(r, op) for op in ops if (r := ratio(table, size, op, num, den)) is not None]
    if not found:
        return None, ""
    return min(found)


def _fmt_worst(value: float | None, op: str) -> str:
    return "n/a" if value is None else f"{value:.2f}× ({op})"


def evaluate_targets(
    ops_raw: dict[str, Any] | None,
    e2e_raw: dict[str, Any] | None,
    mem_raw: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Each target row: what, goal, measured (text), and PASS / MISS / n/a."""
    rows: list[dict[str, Any]] = []

    def add(what: str, goal: str, value: float | None, ok: bool | None, shown: str) -> None:
        status = "n/a" if value is None or ok is None else ("PASS" if ok else "MISS")
        rows.append({"target": what, "goal": goal, "measured": shown, "status": status})

    table = op_samples(ops_raw) if ops_raw else {}
    s = GATE_SIZE
    basic = ("send_text", "send_bytes", "receive_text", "receive_bytes")

    # "x times faster" = other's ns / ours; the worst op decides.
    worst, op = _ops_check(table, basic, "starlette", "compiled", s)
    add(
        "compiled vs Starlette: send_text, send_bytes, receive_text, receive_bytes",
        "≥ 3.0× faster",
        worst,
        worst is not None and worst >= 3.0,
        _fmt_worst(worst, op),
    )
    r = ratio(table, s, "send_json", "starlette", "compiled")
    add(
        "compiled vs Starlette: send_json (ujson)",
        "≥ 2.5× faster",
        r,
        r is not None and r >= 2.5,
        _fmt_worst(r, "send_json"),
    )
    r = ratio(table, s, "receive_json", "starlette", "compiled")
    add(
        "compiled vs Starlette: receive_json (ujson)",
        "≥ 2.0× faster",
        r,
        r is not None and r >= 2.0,
        _fmt_worst(r, "receive_json"),
    )

    # compiled / floor: the largest (worst) over every op, direct and dispatch.
    over = [(x, op) for op in ALL_OPS if (x := ratio(table, s, op, "compiled", "floor")) is not None]
    worst_floor = max(over) if over else (None, "")
    add(
        "compiled vs the raw-ASGI floor, every op",
        "≤ 1.10× the floor",
        worst_floor[0],
        worst_floor[0] is not None and worst_floor[0] <= 1.10,
        _fmt_worst(*worst_floor),
    )

    worst, op = _ops_check(table, TEXT_BYTES_OPS, "pure", "compiled", s)
    add(
        "compiled vs pure: text and bytes ops",
        "≥ 1.25× faster",
        worst,
        worst is not None and worst >= 1.25,
        _fmt_worst(worst, op),
    )
    worst, op = _ops_check(table, ALL_OPS, "pure", "compiled", s)
    add("compiled vs pure: no op slower", "≥ 1.0×", worst, worst is not None and worst >= 1.0, _fmt_worst(worst, op))

    disp = [(x, op) for op in DISPATCH_OPS if (x := dispatch_ratio(table, s, op, "compiled")) is not None]
    worst_disp = max(disp) if disp else (None, "")
    add(
        "receive()/send() dispatch vs the direct typed method (compiled)",
        "≤ 1.05×",
        worst_disp[0],
        worst_disp[0] is not None and worst_disp[0] <= 1.05,
        _fmt_worst(*worst_disp),
    )

    worst, op = _ops_check(table, ("send_json", "receive_json"), "litestar", "orjson", s)
    add(
        'json_codec="orjson" vs Litestar: send_json, receive_json',
        "≥ 1.5× faster",
        worst,
        worst is not None and worst >= 1.5,
        _fmt_worst(worst, op),
    )

    # End to end: the websockets-sansio rows, every event loop measured; the worst decides.
    sansio = [row for row in (e2e_raw or {}).get("summary", []) if row["ws"] == "websockets-sansio"]
    vs_star = [
        (row["rate"]["compiled"] / row["rate"]["starlette"], row["loop"])
        for row in sansio
        if row["rate"].get("compiled") and row["rate"].get("starlette")
    ]
    vs_raw = [
        (row["rate"]["compiled"] / row["rate"]["raw"], row["loop"])
        for row in sansio
        if row["rate"].get("compiled") and row["rate"].get("raw")
    ]
    w = min(vs_star) if vs_star else (None, "")
    add(
        "end to end, JSON echo, uvicorn websockets-sansio: messages/s vs Starlette",
        "≥ 1.4×",
        w[0],
        w[0] is not None and w[0] >= 1.4,
        _fmt_worst(w[0], f"loop {w[1]}"),
    )
    w = min(vs_raw) if vs_raw else (None, "")
    add(
        "end to end, JSON echo, uvicorn websockets-sansio: messages/s vs raw ASGI",
        "≥ 0.95×",
        w[0],
        w[0] is not None and w[0] >= 0.95,
        _fmt_worst(w[0], f"loop {w[1]}"),
    )

    per_object = (mem_raw or {}).get("per_object", {})
    ours, theirs = per_object.get("compiled"), per_object.get("starlette")
    r = None if ours is None or theirs is None else ours["bytes"] / theirs["bytes"]
    shown = "n/a" if r is None else f"{ours['bytes']:.0f} B vs {theirs['bytes']:.0f} B ({r:.2f}×)"
    add("memory per connection object (compiled) vs Starlette's", "≤ 1.0×", r, r is not None and r <= 1.0, shown)
    return rows


def fmt_ns(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
