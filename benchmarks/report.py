"""Run every benchmark and write benchmarks/results/RESULTS.md and chart.png.

    python3 benchmarks/report.py [--quick] [--pythons 3.11,3.12,3.13,3.14,3.15] [--main-python 3.11]
                                 [--skip-ops] [--skip-e2e] [--skip-memory] [--no-install]
                                 [--e2e-args "--rounds 7 --concurrent"]

For each Python found (pyenv's /root/.pyenv/versions/X.Y.*/bin/python, else
pythonX.Y on PATH, else, for 3.14 and 3.15, the Debian forky root's that
tools/forky_root.sh makes and runs commands in, as root) it makes
benchmarks/.venv-X.Y and installs the current
working tree into it, non-editable (so the extension is compiled), with the
orjson extra and benchmarks/requirements.txt. The tree is copied to a
temporary directory first: pip builds in place, and the source tree must not
get build products. Then it runs bench_ops.py on every Python, and
bench_e2e.py and bench_memory.py on the main one (3.11), checks the targets
on the main one, and writes the report. Raw results: results/*.raw.json.

This script needs only the standard library; the chart is drawn by the main
Python's venv (matplotlib).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_e2e

import _common as common
import bench_ops

DEFAULT_PYTHONS = ("3.11", "3.12", "3.13", "3.14", "3.15")
# Versions the host may lack: their python runs chrooted in a Debian forky root.
FORKY_PYTHONS = ("3.14", "3.15")
FORKY = common.REPO / "tools" / "forky_root.sh"
INSTALL_TIMEOUT = 1800
RUN_TIMEOUT = 3600
SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    ".tox",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".hypothesis",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "*.so",
    "*.c",
    "*.html",
    "benchmarks",
    "fuzz",
)


def find_python(version: str) -> list[str] | None:
    """The command that runs Python ``version``: a host interpreter, or the forky root's."""
    pyenv = os.environ.get("PYENV_ROOT", "/root/.pyenv")
    candidates = sorted(
        glob.glob(f"{pyenv}/versions/{version}.*/bin/python"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")],
    )
    host = candidates[-1] if candidates else shutil.which(f"python{version}")
    if host:
        return [host]
    return forky(f"python{version}") if version in FORKY_PYTHONS else None


def forky(program: str, *bind: Path) -> list[str]:
    """``program`` run in the forky root (made on first use), with ``bind`` visible at the same paths."""
    binds = [arg for path in bind for arg in ("--bind", str(path))]
    return ["bash", str(FORKY), "run", *binds, "--", program]


def in_forky(command: list[str]) -> bool:
    return command[:2] == ["bash", str(FORKY)]


def run(cmd: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    print("$ " + shlex.join(cmd), flush=True)
    return subprocess.run(cmd, timeout=timeout, text=True, **kwargs)


def snapshot_source(into: Path) -> Path:
    """A copy of the working tree without build products, for pip to build from."""
    dest = into / "bocadillo_ws-src"
    shutil.copytree(common.REPO, dest, ignore=SNAPSHOT_IGNORE)
    return dest


def prepare_venv(version: str, interpreter: list[str], source: Path | None) -> list[str]:
    """benchmarks/.venv-<version> with the current tree installed; returns the command of its python."""
    venv = common.BENCH_DIR / f".venv-{version}"
    # A forky venv's bin/python links to the root's /usr/bin/python3.X: a
    # dangling link on the host, so lexists, and run through forky_root.sh.
    python = [str(venv / "bin" / "python")]
    installer = python
    if in_forky(interpreter):
        python = forky(python[0])
        installer = forky(python[-1], source.parent) if source is not None else python
    if not os.path.lexists(venv / "bin" / "python"):
        run([*interpreter, "-m", "venv", str(venv)], 300, check=True)
    if source is not None:
        # A local directory is always rebuilt and reinstalled: the extension is current.
        run(
            [
                *installer,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                f"{source}[orjson]",
                "-r",
                str(common.BENCH_DIR / "requirements.txt"),
            ],
            INSTALL_TIMEOUT,
            check=True,
        )
    backend = subprocess.run(
        # -I: forky runs it from the project's root, whose bocadillo_ws/ must not shadow the install
        [*python, "-I", "-c", "import bocadillo_ws; print(bocadillo_ws.BACKEND)"],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    if backend != "cython":
        raise RuntimeError(f"{venv}: bocadillo_ws.BACKEND is {backend!r}, the compiled extension did not install")
    return python


def bench(python: list[str], script: str, out: Path, extra: list[str]) -> dict[str, Any] | None:
    """Run one benchmark script; its raw JSON, or None if it failed."""
    out.unlink(missing_ok=True)  # never report a previous run's file as this one's
    cmd = [*python, "-E", str(common.BENCH_DIR / script), "--json", str(out), *extra]
    result = run(cmd, RUN_TIMEOUT, cwd=tempfile.gettempdir())
    if result.returncode != 0 and not out.exists():
        print(f"!! {script} failed (exit {result.returncode})", file=sys.stderr)
        return None
    if result.returncode != 0:
        print(f"!! {script} exited {result.returncode}; its partial results are kept", file=sys.stderr)
    return json.loads(out.read_text())  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- RESULTS.md


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(common.REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        dirty = subprocess.run(
            # The results this run writes are not a change to the measured source.
            ["git", "-C", str(common.REPO), "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def write_results(
    args: argparse.Namespace,
    command: str,
    ops: dict[str, dict[str, Any]],
    e2e: dict[str, Any] | None,
    memory: dict[str, Any] | None,
    problems: list[str],
    chart: bool,
) -> Path:
    main = args.main_python
    machine = next((raw["machine"] for raw in [*ops.values(), e2e, memory] if raw), common.machine_info())
    packages: dict[str, str] = next((raw["packages"] for raw in [ops.get(main), e2e, memory, *ops.values()] if raw), {})
    out: list[str] = ["# bocadillo_ws benchmark results", ""]
    if args.quick:
        out += ["> **Smoke run (`--quick`)**: short loops, few repeats. Not for conclusions.", ""]
    out += [
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `{command}`",
        f"- Source: {git_state()}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores "
        f"({machine['usable_cpus']} usable), {machine['platform']}",
        "- Pythons: " + (", ".join(f"{v} ({raw['machine']['python']})" for v, raw in ops.items()) or "none ran"),
        "- Packages (main Python): " + ", ".join(f"{k} {v}" for k, v in packages.items()),
        "",
    ]
    if problems:
        out += ["**Problems in this run:**", "", *(f"- {p}" for p in problems), ""]

    out += [f"## Targets (Python {main}, ratios within one run)", ""]
    out += [
        f"Per-op targets are checked at the {common.GATE_SIZE} chat message; the worst op decides. "
        "End to end: the websockets-sansio rows, every loop measured (the worst decides).",
        "",
    ]
    rows = common.evaluate_targets(ops.get(main), e2e, memory)
    out += [
        md_table(
            ["target", "goal", "measured (worst)", "result"],
            [[r["target"], r["goal"], r["measured"], f"**{r['status']}**"] for r in rows],
        ),
        "",
    ]
    if chart:
        out += ["![ns/call per op at 100 B, the per-version ratios, and end-to-end messages/s](chart.png)", ""]

    if ops:
        out += [f"## Per Python version ({common.GATE_SIZE} chat message, ratios of paired repeats)", ""]
        out += [md_table(*version_table(ops)), ""]

    for raw in ops.values():
        cfg = raw["config"]
        out += [f"## Per operation, Python {raw['machine']['python']}", ""]
        out += [
            f"ns per call (median of {cfg['repeats']} repeats, ~{cfg['loop_ms']:g} ms loops, "
            f"{cfg.get('clock', 'wall')} clock, nothing subtracted; each ratio is the median of the "
            "per-repeat ratios, whose loops ran back to back). "
            "Baselines: "
            + ", ".join(f"{k} {v:.1f} ns" for k, v in raw["baselines_ns"].items())
            + ". Payloads: "
            + ", ".join(f"{k} = {v} bytes" for k, v in raw["payload_bytes"].items())
            + ".",
            "",
        ]
        if raw.get("skipped"):
            out += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in raw["skipped"].items()), ""]
        header, table = bench_ops.table_rows(raw)
        out += [md_table(header, table), ""]
    out += [
        "Columns: `floor` is a one-line `async def` around the raw ASGI call "
        "(plus `ujson.dumps`/`ujson.loads` for JSON); "
        '`orjson` is bocadillo_ws compiled with `json_codec="orjson"`; `op[kind]` rows are `receive()` / `send()` '
        "with `value_type=kind`. Ratios: `star/comp` = Starlette ÷ compiled (× faster), "
        "`comp/floor` = compiled ÷ floor, "
        "`pure/comp` = pure ÷ compiled, `disp/direct` = `receive()`/`send()` ÷ the typed method (compiled), "
        "`lite/orjson` = Litestar ÷ compiled-with-orjson.",
        "",
    ]

    if e2e:
        cfg = e2e["config"]
        out += ["## End to end (uvicorn, JSON echo)", ""]
        at_once = " (every app's server at the same time, --concurrent)" if cfg.get("concurrent") else ""
        out += [
            f"{cfg['connections']} connections × {cfg['window']} messages in flight, {cfg['warmup_s']:g} s warm-up, "
            f"{cfg['duration_s']:g} s counted, median of {cfg['rounds']} rounds; server on CPU {cfg['cpus'][0]}"
            f"{at_once}, load client ({cfg.get('client', 'websockets')}) on CPU {cfg['cpus'][1]}. "
            "When the client's CPU is near 100 % it is the bottleneck: read the server µs CPU/msg column then; "
            "a large waiting share means other processes had the server's CPU.",
            "",
        ]
        header, table = bench_e2e.table_rows(e2e)
        out += [md_table(header, table), ""]
        failed = [r for r in e2e["runs"] if "error" in r]
        if failed:
            out += ["Failed runs: " + "; ".join(f"{r['ws']}/{r['loop']}/{r['app']}: {r['error']}" for r in failed), ""]

    if memory:
        out += ["## Memory", ""]
        per = memory["per_object"]
        star = per.get("starlette", {}).get("bytes")
        out += [
            md_table(
                ["object", "bytes (tracemalloc)", "vs Starlette's"],
                [
                    [k, f"{v['bytes']:.0f}", common.fmt_ratio(v["bytes"] / star if star else None)]
                    for k, v in per.items()
                ],
            ),
            "",
        ]
        rss = memory["rss"]
        if "error" in rss:
            out += [f"RSS growth: {rss['error']}", ""]
        else:
            out += [
                f"RSS growth over {rss['messages']:,} `receive_json` + `send_json` ({rss['backend']} backend, after "
                f"{rss['warmup_messages']:,} warm-up messages): {rss['growth_bytes'] / 1024:+.0f} KiB "
                f"({rss['growth_bytes_per_message']:.4f} B/message); RSS {rss['rss_after_warmup'] / 2**20:.1f} → "
                f"{rss['rss_end'] / 2**20:.1f} MiB.",
                "",
            ]

    out += ["See benchmarks/README.md for how each figure is measured.", ""]
    path = common.RESULTS_DIR / "RESULTS.md"
    path.write_text("\n".join(out))
    return path


def version_table(ops: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per op and Python: compiled ns/call, and it against pure, the floor and Starlette."""
    header = ["op", "Python", "compiled ns", "pure/comp", "comp/floor", "star/comp"]
    rows = []
    size = common.GATE_SIZE
    for op in common.ALL_OPS:
        for version, raw in ops.items():
            samples = common.op_samples(raw)
            compiled = samples.get((size, op, "compiled"))
            if not compiled:
                continue
            rows.append(
                [
                    op,
                    version,
                    f"{statistics.median(compiled):.0f}",
                    common.fmt_ratio(common.ratio(samples, size, op, "pure", "compiled")),
                    common.fmt_ratio(common.ratio(samples, size, op, "compiled", "floor")),
                    common.fmt_ratio(common.ratio(samples, size, op, "starlette", "compiled")),
                ]
            )
    return header, rows


# --------------------------------------------------------------------------- chart


# Per Python version, the ratios the targets are about: (title, numerator, denominator, goal line).
VERSION_PANELS = (
    ("pure ÷ compiled (above 1: compiled faster)", "pure", "compiled"),
    ("compiled ÷ raw-ASGI floor (lower is better)", "compiled", "floor"),
    ("Starlette ÷ compiled (above 1: compiled faster)", "starlette", "compiled"),
)


def render_chart(ops_paths: list[Path], e2e_path: Path | None, out: Path) -> None:
    """Grouped bars: ns/call per op at 100 B on the main Python (the first
    ops file), the per-version ratios of every ops file, and e2e messages/s.
    Runs in a venv with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = json.loads(ops_paths[0].read_text())
    table = common.op_medians(raw)
    size = common.GATE_SIZE
    ops = [op for op in common.ALL_OPS if any((size, op, impl) in table for impl in common.IMPLS)]
    impls = [impl for impl in common.IMPLS if any((size, op, impl) in table for op in ops)]
    e2e = json.loads(e2e_path.read_text()) if e2e_path and e2e_path.exists() else None
    per_version = [json.loads(path.read_text()) for path in ops_paths]
    panels = 1 + len(VERSION_PANELS) + (1 if e2e and e2e.get("summary") else 0)
    fig = plt.figure(figsize=(15, 5.5 * panels))
    grid = fig.add_gridspec(panels, 2, width_ratios=[2, 1])
    colors = dict(zip(common.IMPLS, ("#9e9e9e", "#1f77b4", "#9467bd", "#ff7f0e", "#2ca02c", "#17becf")))

    # JSON ops cost ~10x the others: two panels, so neither group is flattened.
    groups = [
        ("text and bytes ops", [op for op in ops if "json" not in op]),
        ("JSON ops", [op for op in ops if "json" in op]),
    ]
    for column, (title, group) in enumerate(groups):
        if not group:
            continue
        ax = fig.add_subplot(grid[0, column])
        width = 0.8 / len(impls)
        for i, impl in enumerate(impls):
            xs = [k + (i - (len(impls) - 1) / 2) * width for k in range(len(group))]
            ys = [table.get((size, op, impl), 0) for op in group]
            ax.bar(xs, ys, width, label=common.IMPL_LABELS[impl], color=colors[impl])
        ax.set_xticks(range(len(group)), group, rotation=30, ha="right")
        ax.set_ylabel("ns per call (lower is better)")
        ax.set_title(f"{title}, {size} chat message, Python {raw['machine']['python']}")
        ax.grid(axis="y", alpha=0.3)
        if column == 0:  # one legend for both panels, above them, clear of the bars
            handles, labels = ax.get_legend_handles_labels()
            fig.legend(
                handles,
                labels,
                loc="upper center",
                ncols=len(impls),
                fontsize=9,
                title="ns per call of each implementation (no bar: the op does not exist there)",
                title_fontsize=9,
            )

    # One bar per Python version and op: is the compiled backend ahead on each?
    version_colors = ("#9e9e9e", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
    for row, (title, num, den) in enumerate(VERSION_PANELS, start=1):
        ax = fig.add_subplot(grid[row, :])
        ratios = [
            {op: common.ratio(common.op_samples(version_raw), size, op, num, den) for op in ops}
            for version_raw in per_version
        ]
        panel_ops = [op for op in ops if any(by_op[op] is not None for by_op in ratios)]  # e.g. no Starlette receive()
        width = 0.8 / len(per_version)
        for i, (version_raw, by_op) in enumerate(zip(per_version, ratios)):
            xs = [k + (i - (len(per_version) - 1) / 2) * width for k in range(len(panel_ops))]
            ys = [by_op[op] or 0 for op in panel_ops]
            label = f"Python {version_raw['machine']['python']}"
            ax.bar(xs, ys, width, label=label, color=version_colors[i % len(version_colors)])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(panel_ops)), panel_ops, rotation=30, ha="right")
        ax.set_xlim(-0.5, len(panel_ops) - 0.5)
        ax.set_ylabel("ratio of ns per call (paired repeats)")
        ax.set_title(f"{title}, {size} chat message, per Python version (no bar: not measured)")
        ax.legend(ncols=len(per_version), fontsize=9)
        ax.grid(axis="y", alpha=0.3)

    if e2e and e2e.get("summary"):
        ax = fig.add_subplot(grid[panels - 1, :])
        summary = e2e["summary"]
        apps = [app for app in bench_e2e.APPS if any(app in row["rate"] for row in summary)]
        app_colors = {"raw": "#9e9e9e", "starlette": "#1f77b4", "pure": "#ff7f0e", "compiled": "#2ca02c"}
        width = min(0.8 / len(apps), 0.15)
        for i, app in enumerate(apps):
            xs = [k + (i - (len(apps) - 1) / 2) * width for k in range(len(summary))]
            ax.bar(xs, [row["rate"].get(app, 0) for row in summary], width, label=app, color=app_colors[app])
        ax.set_xticks(range(len(summary)), [f"{row['ws']}\n{row['loop']}" for row in summary])
        ax.set_xlim(-0.5, len(summary) - 0.5)
        ax.set_ylabel("echoed messages / s (higher is better)")
        ax.set_title("End to end: JSON echo through uvicorn")
        ax.legend(ncols=4, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.09 / panels))
    fig.savefig(out, dpi=110)


# --------------------------------------------------------------------------- main


# --------------------------------------------------------------------------- Hub fan-out (bench_fanout.py)


def run_fanout(pythons: dict[str, list[str]], quick: list[str], problems: list[str]) -> str:
    """bench_fanout.py on each Python (Redis on the first only); a Markdown section for RESULTS.md."""
    rows = []
    redis_line = ""
    for i, (version, python) in enumerate(pythons.items()):
        extra = quick + ([] if i == 0 else ["--no-redis"])
        raw = bench(python, "bench_fanout.py", common.RESULTS_DIR / f"fanout-{version}.raw.json", extra)
        if raw is None:
            problems.append(f"bench_fanout.py failed on Python {version}")
            continue
        us, ratios = raw["in_process"]["us_per_recipient"], raw["in_process"]["ratios"]
        for name, value in us.items():
            ratio = ratios.get(name)
            vs = f"{ratio['speedup_vs_starlette']:.1f}x / {ratio['x_floor']:.2f}x" if ratio else ""
            rows.append([version, name, f"{value:.3f}", vs])
        stall = raw.get("stalled")
        if stall:
            rows.append([version, "hub, one member stalled", f"{stall['us_per_recipient']['one_stalled']:.3f}", f"{stall['ratio']:.2f}x the no-stall time"])
        redis = raw.get("redis") or {}
        if redis.get("latency_ms", {}).get("p50") is not None:
            lat = redis["latency_ms"]
            redis_line = (
                f"\nThrough Redis (Python {version}, one process, loopback): publish→receive at 1,000 msg/s"
                f" p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms; one hub drains"
                f" {redis['drain_msgs_per_s']:,.0f} msg/s.\n"
            )
    if not rows:
        return ""
    table = md_table(["Python", "variant", "µs per recipient", "vs Starlette's loop / vs floor"], rows)
    head = "\n## Hub fan-out (bench_fanout.py)\n\nOne ~100-byte message to 1,000 members of a room.\n\n"
    chart = ""
    # Drawn by a venv's Python, as the main chart: this script runs on the standard library alone.
    result = run(
        [
            *next(iter(pythons.values())),
            "-E",
            str(Path(__file__).resolve()),
            "--render-fanout-chart",
            str(common.RESULTS_DIR / "fanout.png"),
            *(str(p) for p in sorted(common.RESULTS_DIR.glob("fanout-*.raw.json"))),
        ],
        300,
        cwd=tempfile.gettempdir(),
    )
    if result.returncode == 0:
        chart = "\n![fan-out, µs per recipient](fanout.png)\n"
    else:
        problems.append("the fan-out chart could not be drawn")
    return head + table + "\n" + redis_line + chart


def render_fanout_chart(raw_paths: list[Path], out: Path) -> bool:
    """µs per recipient per variant, one group per Python (log scale: Starlette's loop is ~40x the hub)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(path.read_text()) for path in raw_paths]
    runs = [run for run in runs if run.get("in_process")]
    if not runs:
        return False
    variants = list(runs[0]["in_process"]["us_per_recipient"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        values = [run["in_process"]["us_per_recipient"].get(variant, 0.0) for run in runs]
        positions = [x + i * width for x in range(len(runs))]
        ax.bar(positions, values, width, label=variant)
    ax.set_xticks([x + width * (len(variants) - 1) / 2 for x in range(len(runs))])
    ax.set_xticklabels([f"Python {run.get('python', '?').split()[0]}" for run in runs])
    ax.set_yscale("log")
    ax.set_ylabel("µs per recipient (lower is better)")
    ax.set_title("Hub fan-out to 1,000 members, one ~100-byte message")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: every benchmark in its --quick mode")
    parser.add_argument("--pythons", default=",".join(DEFAULT_PYTHONS), help="versions for the per-op benchmark")
    parser.add_argument("--main-python", default="3.11", help="version for e2e, memory, targets and the chart")
    parser.add_argument("--skip-ops", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-fanout", action="store_true", help="skip bench_fanout.py (Hub fan-out, Redis)")
    parser.add_argument("--no-install", action="store_true", help="reuse the venvs as they are (no rebuild)")
    parser.add_argument(
        "--e2e-args", default="", metavar="ARGS", help="more arguments for bench_e2e.py, e.g. '--rounds 7 --concurrent'"
    )
    # OUT E2E_RAW MAIN_OPS_RAW [OTHER_OPS_RAW...]
    parser.add_argument("--render-chart", nargs="+", help=argparse.SUPPRESS)
    # OUT FANOUT_RAW...
    parser.add_argument("--render-fanout-chart", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.render_fanout_chart:
        out, *raws = args.render_fanout_chart
        return 0 if render_fanout_chart([Path(p) for p in raws], Path(out)) else 1
    if args.render_chart:
        out, e2e_raw, *ops_raws = args.render_chart
        render_chart([Path(p) for p in ops_raws], Path(e2e_raw) if e2e_raw != "-" else None, Path(out))
        return 0

    command = shlex.join(["python3", "benchmarks/report.py", *(sys.argv[1:] if argv is None else argv)])
    # The main Python always runs the per-op benchmark too: the targets are checked on it.
    wanted = [args.main_python]
    if not args.skip_ops:
        wanted += [v.strip() for v in args.pythons.split(",") if v.strip()]
    versions = sorted(set(wanted), key=lambda v: tuple(int(x) for x in v.split(".") if x.isdigit()))
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    pythons: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="bocadillo-bench-") as tmp:
        source = None if args.no_install else snapshot_source(Path(tmp))
        for version in versions:
            interpreter = find_python(version)
            if interpreter is None:
                problems.append(f"Python {version}: not found, skipped")
                continue
            try:
                pythons[version] = prepare_venv(version, interpreter, source)
            except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
                problems.append(f"Python {version}: install failed ({exc})")
    print("venvs ready: " + ", ".join(pythons), flush=True)

    quick = ["--quick"] if args.quick else []
    ops: dict[str, dict[str, Any]] = {}
    if not args.skip_ops:
        for version in pythons:
            raw = bench(pythons[version], "bench_ops.py", common.RESULTS_DIR / f"ops-{version}.raw.json", quick)
            if raw is None:
                problems.append(f"bench_ops.py failed on Python {version}")
            else:
                ops[version] = raw
    main_python = pythons.get(args.main_python)
    e2e = memory = None
    e2e_path = common.RESULTS_DIR / "e2e.raw.json"
    if main_python is None and not (args.skip_e2e and args.skip_memory):
        problems.append(f"Python {args.main_python} unavailable: no e2e or memory results")
    if main_python and not args.skip_e2e:
        e2e = bench(main_python, "bench_e2e.py", e2e_path, quick + shlex.split(args.e2e_args))
        if e2e is None or any("error" in r for r in e2e["runs"]):
            problems.append("bench_e2e.py: some runs failed (see below)")
    if main_python and not args.skip_memory:
        memory = bench(main_python, "bench_memory.py", common.RESULTS_DIR / "memory.raw.json", quick)
        if memory is None:
            problems.append("bench_memory.py failed")

    chart = False
    chart_python = main_python or next(iter(pythons.values()), None)
    chart_ops = args.main_python if args.main_python in ops else next(iter(ops), None)
    if chart_python and chart_ops:
        result = run(
            [
                *chart_python,
                "-E",
                str(Path(__file__).resolve()),
                "--render-chart",
                str(common.RESULTS_DIR / "chart.png"),
                str(e2e_path) if e2e else "-",
                str(common.RESULTS_DIR / f"ops-{chart_ops}.raw.json"),
                *(str(common.RESULTS_DIR / f"ops-{v}.raw.json") for v in ops if v != chart_ops),
            ],
            300,
            cwd=tempfile.gettempdir(),
        )
        chart = result.returncode == 0
        if not chart:
            problems.append("the chart could not be drawn")
    fanout = None
    if not args.skip_fanout:
        fanout = run_fanout(pythons, quick, problems)
    path = write_results(args, command, ops, e2e, memory, problems, chart)
    if fanout:
        with path.open("a", encoding="utf-8") as results:
            results.write(fanout)
    print(f"\nwrote {path}" + (f" and {common.RESULTS_DIR / 'chart.png'}" if chart else ""))
    for row in common.evaluate_targets(ops.get(args.main_python), e2e, memory):
        print(f"  {row['status']:5} {row['target']}: {row['measured']} (goal {row['goal']})")
    for problem in problems:
        print(f"  !! {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
