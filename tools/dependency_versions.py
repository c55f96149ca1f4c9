"""Prints the versions a tox env tests against; with --newest, fails unless they are the newest releases.

    python -I tools/dependency_versions.py                             # print only
    python -I tools/dependency_versions.py --newest starlette fastapi  # and check

"Newest" is what ``pip index versions NAME`` reports for this interpreter (the
index pip is configured with, final releases only, Requires-Python honoured),
so the tox env ``py313-cython-latest`` really tests the releases of the day.
Reads package metadata only: it never imports bocadillo_ws.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

SHOWN = ("starlette", "fastapi", "pydantic", "anyio", "httpx", "uvicorn", "websockets", "ujson", "orjson")


def installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def newest_release(name: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", name],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    match = re.search(rf"^{re.escape(name)} \(([^)]+)\)$", result.stdout, re.MULTILINE | re.IGNORECASE)
    if result.returncode != 0 or match is None:
        raise SystemExit(f"could not find the newest {name} on the index:\n{result.stdout}{result.stderr}")
    return match.group(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--newest", nargs="*", default=[], metavar="NAME", help="fail unless it is the newest release")
    args = parser.parse_args()

    print(f"python {platform.python_version()} ({platform.python_implementation()})")
    for name in dict.fromkeys([*SHOWN, *args.newest]):
        print(f"{name} {installed(name) or '(not installed)'}")

    failures = []
    for name in args.newest:
        have, newest = installed(name), newest_release(name)
        verdict = "ok" if have == newest else "NOT THE NEWEST"
        print(f"newest {name} on the index: {newest}; installed: {have} -> {verdict}")
        if have != newest:
            failures.append(f"{name} {have} is installed, but the newest release is {newest}")
    if failures:
        print("\nFAIL: " + "; ".join(failures), file=sys.stderr)
        print(
            "A dependency caps one of these below its newest release (e.g. the newest FastAPI pins Starlette "
            "below the newest Starlette): split the env into one per package, each on its newest release.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
