"""Checks the wheel matrix: what cibuildwheel would build is exactly what we promise.

    tox -e cibuildwheel
    python tools/check_cibuildwheel.py     # needs cibuildwheel in this Python

1. ``cibuildwheel --print-build-identifiers --platform P`` for linux, macos
   and windows, with pyproject.toml's ``[tool.cibuildwheel]``, gives exactly
   CPython 3.11-3.15 (no free-threaded, PyPy or GraalPy builds) on manylinux
   and musllinux x86_64/aarch64, macOS x86_64/arm64 and Windows AMD64;
2. the workflow (.github/workflows/wheels.yml) pins cibuildwheel's action to
   the version installed here (the one that printed those identifiers), and
   its jobs, each asked of cibuildwheel with the CIBW_ARCHS / CIBW_BUILD the
   job sets, together build every identifier, each once.

Runs offline: cibuildwheel only reads the configuration here.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "wheels.yml"

PYTHONS = ["cp311", "cp312", "cp313", "cp314", "cp315"]
PLATFORMS = {
    "linux": [f"{libc}_{arch}" for libc in ("manylinux", "musllinux") for arch in ("x86_64", "aarch64")],
    "macos": ["macosx_x86_64", "macosx_arm64"],
    "windows": ["win_amd64"],
}


def expected(platform: str) -> set[str]:
    return {f"{py}-{tag}" for py, tag in itertools.product(PYTHONS, PLATFORMS[platform])}


def printed(platform: str, **cibw_env: str) -> set[str]:
    # Only the CIBW_* variables given here: the caller's would change the answer.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")} | cibw_env
    command = [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", platform, str(ROOT)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} with {cibw_env} failed:\n{result.stderr}")
    return set(result.stdout.split())


def workflow_jobs(text: str) -> list[dict[str, str]]:
    """The wheels matrix's entries, as flat key/value maps (a reader for this one file's shape)."""
    entries: list[dict[str, str]] = []
    for line in text.splitlines():
        item = re.match(r"\s*-\s+\{(.*)\}\s*$", line)
        if item:
            pairs = re.findall(r"([\w-]+):\s*(\"[^\"]*\"|'[^']*'|[^,]+)", item.group(1))
            entries.append({k: v.strip().strip("\"'") for k, v in pairs})
    return [entry for entry in entries if "os" in entry and "platform" in entry]


def main() -> int:
    failures: list[str] = []
    all_ids: dict[str, set[str]] = {}
    for platform in PLATFORMS:
        got, want = printed(platform), expected(platform)
        all_ids[platform] = got
        if got == want:
            print(f"ok  {platform}: the {len(got)} intended identifiers, e.g. {min(got)}")
        else:
            failures.append(f"{platform}: extra {sorted(got - want)}, missing {sorted(want - got)}")

    version = importlib.metadata.version("cibuildwheel")
    text = WORKFLOW.read_text()
    pins = set(re.findall(r"uses:\s*pypa/cibuildwheel@v?([\w.]+)", text))
    if pins == {version}:
        print(f"ok  {WORKFLOW.relative_to(ROOT)} pins pypa/cibuildwheel@v{version}, the version checked here")
    else:
        failures.append(f"the workflow pins cibuildwheel {sorted(pins)}, this check ran {version}")

    # What each job builds, asked of cibuildwheel with the variables the job
    # sets: CIBW_ARCHS always, CIBW_BUILD only where the matrix entry has `build`.
    covered: list[str] = []
    for job in workflow_jobs(text):
        env = {"CIBW_ARCHS": job["archs"]} | ({"CIBW_BUILD": job["build"]} if job.get("build") else {})
        ids = printed(job["platform"], **env)
        print(f"    job {job['os']}, {job['platform']}, {env}: {len(ids)} wheels")
        covered += ids
    everything = set().union(*all_ids.values())
    twice = sorted({i for i in covered if covered.count(i) > 1})
    if set(covered) == everything and not twice:
        print(f"ok  the workflow's jobs build each of the {len(everything)} identifiers once")
    else:
        failures.append(f"workflow jobs: not built {sorted(everything - set(covered))}, built twice {twice}")

    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
