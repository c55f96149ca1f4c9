"""Instructions per call under valgrind (callgrind): the per-op comparison, without the noise.

Wall and CPU clocks on a shared 2-core VM swing by tens of percent; an
instruction count does not (the same binary and input give the same count
whatever else the machine runs). Each (op, implementation) runs the very
loop ``bench_ops.py`` times, N iterations, under ``valgrind
--tool=callgrind`` counting only inside ``coroutine.send()`` (the loop is a
coroutine driven by one ``send``); the count / N is the cost of one call.
An interpreter without symbols (Debian's python3.14/3.15 in the forky root:
``tools/forky_root.sh run -- apt-get install -y valgrind`` first) is counted
by the difference of whole runs of N and 6N calls instead (``--whole-runs``
forces it), which cancels start-up and imports. Instructions are not nanoseconds (cache misses and
branch mispredictions are not in them), so the timed table stays the
reference; this one says which way a change went, reliably.

    python benchmarks/bench_instructions.py [--ops send_text,receive_json] [--impls ...] [-n 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

DEFAULT_OPS = "send_text,send_bytes,send_json,receive_text,receive_bytes,receive_json,send[text],receive[json]"
DEFAULT_IMPLS = "floor,starlette,pure,compiled,orjson"


def worker(impl_name: str, op: str, size: str, n: int) -> None:
    """Run one loop of ``n`` calls (inside valgrind)."""
    import bench_ops

    impls, skipped = bench_ops.make_impls((impl_name,))
    if not impls:
        raise SystemExit(f"{impl_name}: {skipped.get(impl_name)}")
    case = bench_ops.make_case(op, size, common.payloads()[size])
    bench_ops.verify(impls[0], case)
    runner = bench_ops.make_runner(impls[0], case)
    bench_ops.drive(runner(iter([None] * n)))


def _valgrind(impl: str, op: str, size: str, n: int, toggle: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        if toggle:
            command += ["--collect-atstart=no", "--toggle-collect=gen_send"]
        command += [sys.executable, __file__, "--worker", impl, op, size, str(n)]
        # Whole runs: a fixed hash seed, the same dict layouts in both runs of a difference.
        env = None if toggle else {**os.environ, "PYTHONHASHSEED": "0"}
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"{impl} {op}: {result.stderr[-2000:]}")
        match = re.search(r"refs:\s+([\d,]+)", result.stderr)
        if match is None:
            raise RuntimeError(f"no instruction count in valgrind's output for {impl} {op}")
        return int(match.group(1).replace(",", ""))


_stripped = False  # set once: the interpreter has no gen_send symbol to toggle on


def instructions(impl: str, op: str, size: str, n: int) -> int:
    """Instructions of ``n`` calls."""
    global _stripped
    # Only what runs inside coroutine.send() is counted: the loops (and the
    # one checked call before them), not the interpreter's start-up.
    if not _stripped:
        count = _valgrind(impl, op, size, n, toggle=True)
        if count:
            return count
        # A stripped interpreter (Debian's python3.14/3.15): no symbol to
        # toggle on, so count whole runs of n and 6n calls; the difference is
        # 5n calls, start-up and imports cancel out.
        _stripped = True
        print("(no gen_send symbol in this interpreter: counting by the difference of two whole runs)", file=sys.stderr)
    return (_valgrind(impl, op, size, 6 * n, toggle=False) - _valgrind(impl, op, size, n, toggle=False)) // 5


def main(argv: list[str] | None = None) -> int:
    global _stripped
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default=DEFAULT_OPS)
    parser.add_argument("--impls", default=DEFAULT_IMPLS)
    parser.add_argument("--size", default=common.GATE_SIZE, choices=common.SIZE_NAMES)
    parser.add_argument("-n", type=int, default=20_000, help="calls in the long run")
    parser.add_argument(
        "--whole-runs", action="store_true", help="count by the difference of whole runs (what a stripped interpreter gets)"
    )
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, op, size, n = args.worker
        worker(impl, op, size, int(n))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    common.check_installed_package()
    if args.whole_runs:
        _stripped = True
    ops = [o for o in args.ops.split(",") if o]
    impls = [i for i in args.impls.split(",") if i]
    table: dict[str, dict[str, float]] = {}
    for op in ops:
        row = table.setdefault(op, {})
        for impl in impls:
            if op.startswith(("send[", "receive[")) and impl == "starlette":
                continue  # Starlette's receive()/send() are raw events: no dispatch to compare
            row[impl] = instructions(impl, op, args.size, args.n) / args.n
            print(f"{op:14s} {impl:10s} {row[impl]:8.0f}", file=sys.stderr)
    print(f"\ninstructions per call, {args.size} message, Python {sys.version.split()[0]}")
    print("| op | " + " | ".join(impls) + " | Starlette / compiled | compiled / floor | pure / compiled |")
    print("|---|" + "---|" * (len(impls) + 3))
    for op, row in table.items():
        def ratio(a: str, b: str, row: dict[str, float] = row) -> str:
            return f"{row[a] / row[b]:.2f}" if a in row and b in row else "—"

        cells = [f"{row[i]:.0f}" if i in row else "—" for i in impls]
        print(f"| {op} | " + " | ".join(cells) + f" | {ratio('starlette', 'compiled')} | "
              f"{ratio('compiled', 'floor')} | {ratio('pure', 'compiled')} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"python": sys.version, "size": args.size, "table": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
