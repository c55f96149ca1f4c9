"""Cost of the receive limits per message: ``max_size``, ``max_rate``, both, and none.

    python benchmarks/bench_limits.py [--repeats R] [--n N] [--json OUT]

``receive_text()`` of a 100-byte chat message on the in-memory transport
(bench_ops'), on the compiled and the pure backend, with no limit (the
server's own ``receive``: nothing in between), with ``max_size=65536``, with
``max_rate=1e9`` (never refused), and with both. Each repeat times the four
loops back to back (this thread's CPU time, GC paused); the extra ns per
message is the median over repeats of (limited - unlimited).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import median
from typing import Any

if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent.parent:  # pragma: no cover
    raise SystemExit("run by path from a venv with bocadillo_ws installed (not the source tree)")

import _common as common
from bench_ops import _receive_loop, drive, time_loop, transport

VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "max_size": {"max_size": 65_536},
    "max_rate": {"max_rate": 1e9},
    "both": {"max_size": 65_536, "max_rate": 1e9},
}


def runner(cls: type[Any], options: dict[str, Any]) -> Any:
    message = common.chat_message()
    event = {"type": "websocket.receive", "text": common.dumps_compact(message)}
    receive, send, connected = transport(event)
    ws = cls(dict(common.SCOPE), receive, send, **options)
    drive(ws.accept())
    connected()
    assert drive(ws.receive_text()) == event["text"]
    return lambda times: _receive_loop(ws.receive_text, times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    print(f"receive_text, 100 B, Python {sys.version.split()[0]}: ns per message (median of {args.repeats})")
    for backend in ("compiled", "pure"):
        cls = common.bocadillo_class(backend)
        if cls is None:
            continue
        runners = {name: runner(cls, options) for name, options in VARIANTS.items()}
        samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):
            for name, run in runners.items():
                samples[name].append(time_loop(run, args.n))
        base = median(samples["none"])
        extra = {name: median(a - b for a, b in zip(samples[name], samples["none"])) for name in VARIANTS}
        results[backend] = {"none_ns": base, **{f"{name}_extra_ns": extra[name] for name in VARIANTS if name != "none"}}
        cells = ", ".join(f"{name} +{extra[name]:.0f}" for name in VARIANTS if name != "none")
        print(f"  {backend:8} no limit {base:.0f} ns; {cells}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
