"""Run the installed Starlette's and FastAPI's own WebSocket tests against bocadillo_ws.WebSocket.

    python -I compat/run.py [--cache DIR] [--backends cython,python] [pytest args...]

For each framework: download the sdist of the *installed* version (pip, into
the cache directory, never into the repository), unpack its tests, and run the
test modules that mention websockets under pytest with
``bocadillo_compat_plugin`` (which swaps the class in and keeps only the
WebSocket tests). Once per backend: compiled, then pure
(``BOCADILLO_WS_NO_EXTENSIONS=1``, read by bocadillo_ws at import time).

Fails on any failure that ``excused.txt`` does not excuse, and on any excused
test that passes (the list must stay true). Prints the counts per backend.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("starlette", "fastapi")
# The sdist members a test run needs: never the package source itself, or the
# tests would import the sdist's copy instead of the installed framework
# (whose WebSocket class bocadillo_ws subclasses).
MEMBERS = ("tests/", "docs_src/", "pyproject.toml", "setup.cfg", "pytest.ini")
BACKENDS = {"cython": {}, "python": {"BOCADILLO_WS_NO_EXTENSIONS": "1"}}


@dataclass(frozen=True)
class Excuse:
    framework: str
    node: str  # a node id, or one without its [parameters] for all of them
    reason: str

    def covers(self, framework: str, nodeid: str) -> bool:
        return framework == self.framework and (nodeid == self.node or nodeid.startswith(self.node + "["))


def read_excused(path: Path) -> list[Excuse]:
    """``framework node-id -- reason`` per line; ``#`` comments and blank lines ignored."""
    excuses = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"(\w+)\s+(\S+)\s+--\s+(.+)", line.strip())
        if match is None or match[1] not in FRAMEWORKS:
            raise SystemExit(f"{path}:{number}: expected 'framework node-id -- reason', got {line!r}")
        excuses.append(Excuse(match[1], match[2], match[3]))
    return excuses


def unpacked_sdist(framework: str, cache: Path) -> Path:
    """The installed version's tests, from its sdist (downloaded once per version)."""
    version = importlib.metadata.version(framework)
    target = cache / f"{framework}-{version}"
    if (target / ".complete").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"{framework}=={version}"
    # --no-binary for this one package only: pip prepares the sdist's metadata,
    # and its build backend (hatchling, pdm-backend) may come as a wheel.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-binary", framework, "--no-deps", "-d", str(cache), spec],
        check=True,
        timeout=900,
    )
    archive = next(cache.glob(f"{framework}-{version}.tar.gz"))
    prefix = f"{framework}-{version}/"
    with tarfile.open(archive) as tar:
        wanted = [
            member
            for member in tar.getmembers()
            if member.name.startswith(prefix) and member.name[len(prefix) :].startswith(MEMBERS)
        ]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(cache, members=wanted, filter="data")
        else:  # pragma: no cover - Python 3.10 before 3.10.12
            tar.extractall(cache, members=wanted)  # names checked against MEMBERS above
    (target / ".complete").touch()
    return target


def websocket_modules(root: Path) -> list[str]:
    """Test modules that mention websockets; the plugin picks the tests inside them."""
    return sorted(
        str(path.relative_to(root))
        for path in (root / "tests").rglob("test_*.py")
        if "websocket" in path.read_text(encoding="utf-8").lower()
    )


def run_framework(
    framework: str, root: Path, backend: str, extra: list[str], excuses: list[Excuse], value_type: str | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        excuses_path = Path(tmp) / "excuses.json"
        excuses_path.write_text(json.dumps({e.node: e.reason for e in excuses if e.framework == framework}))
        env = {
            **os.environ,
            **BACKENDS[backend],
            "COMPAT_BACKEND": backend,
            "COMPAT_REPORT": str(report_path),
            "COMPAT_EXCUSES": str(excuses_path),
            "COMPAT_VALUE_TYPE": value_type or "",
            "PYTHONPATH": os.pathsep.join([str(HERE), str(root)]),
        }
        if backend == "cython":
            env.pop("BOCADILLO_WS_NO_EXTENSIONS", None)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "bocadillo_compat_plugin",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(root),
            *extra,
            *websocket_modules(root),
        ]
        mode = f", value_type={value_type!r} by default" if value_type else ""
        print(f"\n=== {framework} on the {backend} backend{mode}: {' '.join(command[1:7])} ...", flush=True)
        subprocess.run(command, cwd=root, env=env, check=False)
        if not report_path.exists():
            raise SystemExit(f"{framework}/{backend}: pytest wrote no report (did the plugin load?)")
        result: dict[str, Any] = json.loads(report_path.read_text())
        return result


def judge(framework: str, backend: str, report: dict[str, Any], excuses: list[Excuse]) -> tuple[str, list[str]]:
    """The counts line, and every failure not excused or excuse not true."""
    outcomes: dict[str, str] = report["outcomes"]
    problems = []
    counts: Counter[str] = Counter()
    for nodeid, outcome in sorted(outcomes.items()):
        if outcome == "excused":  # an excused test, marked strict xfail, that failed
            counts["excused"] += 1
        elif outcome == "excused but passed":
            counts["passed"] += 1
            problems.append(f"{framework}/{backend}: excused but passes (remove it from excused.txt): {nodeid}")
        elif outcome in ("failed", "collection error", "xpassed"):
            counts["failed"] += 1
            problems.append(f"{framework}/{backend}: {outcome} and not excused: {nodeid}")
        else:  # passed, upstream's own xfail, skipped
            counts["passed" if outcome in ("passed", "xfailed") else outcome] += 1
    if not outcomes:
        problems.append(f"{framework}/{backend}: no test ran")
    # An entry for a test this version does not have is not an error (the list
    # serves the oldest and the newest release), but it is shown.
    absent = [e.node for e in excuses if e.framework == framework and not any(e.covers(framework, n) for n in outcomes)]
    if absent:
        print(f"note: {framework}/{backend}: excused tests not in this version: {', '.join(absent)}")
    versions = report.get("versions", {})
    mode = "" if report.get("value_type") in (None, "default") else f", value_type={report['value_type']!r}"
    line = (
        f"--- {framework} {versions.get(framework, '?')} [{report.get('backend')}{mode}]:"
        f" {counts['passed']} passed, {counts['excused']} excused, {counts['failed']} failed,"
        f" {counts['skipped']} skipped (upstream's own skip marks);"
        f" served class checked: {report.get('served')}"
    )
    return line, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(".tox") / "compat-sdists")
    parser.add_argument("--backends", default="cython,python")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--excused", type=Path, default=HERE / "excused.txt")
    parser.add_argument(
        "--event-check",
        default="cython",
        metavar="BACKEND",
        help="also run once with value_type='event' by default, where every test must pass ('' to skip)",
    )
    args, extra = parser.parse_known_args()
    excuses = read_excused(args.excused)
    problems: list[str] = []
    summary = []
    for framework in args.frameworks.split(","):
        root = unpacked_sdist(framework, args.cache.resolve())
        for backend in args.backends.split(","):
            report = run_framework(framework, root, backend, extra, excuses)
            line, found = judge(framework, backend, report, excuses)
            print(line, flush=True)
            summary.append(line)
            problems += found
        if args.event_check:
            # The excuse "fails only because receive()/send() are typed" checked:
            # with value_type="event" by default, nothing may fail at all.
            report = run_framework(framework, root, args.event_check, extra, [], value_type="event")
            line, found = judge(framework, args.event_check, report, [])
            print(line, flush=True)
            summary.append(line)
            problems += [f"{problem} (with value_type='event' by default)" for problem in found]
    print("\n=== upstream compatibility summary", *summary, sep="\n")
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
