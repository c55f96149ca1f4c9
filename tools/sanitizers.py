"""The tox env `sanitizers`: the compiled backend under ASan and UBSan (gcc), and -Wall -Wextra on our C.

    python tools/sanitizers.py [pytest args]      # from the tox env's venv (tox -e sanitizers)

1. Compiles a translation unit that includes ``bocadillo_ws/_awaitable.h``
   (the hand-written C) with ``-Wall -Wextra -Werror``: any warning fails.
2. Builds the wheel from a copy of the tree with
   ``-fsanitize=address,undefined -fno-omit-frame-pointer
   -fno-sanitize-recover=undefined -Wall -Wextra`` and installs it with the
   test extra into this venv; counts the build's warnings per file (those in
   ``_awaitable.h`` fail; the rest are Cython's generated C, printed).
3. Checks that the installed ``_codec`` .so really is instrumented (it
   references ``__asan_init`` and UBSan's handlers) and that, with the ASan
   runtime preloaded, ``BACKEND == "cython"``.
4. Runs ``pytest -m "not slow"`` (the whole quick suite: both backends'
   legs, tests/test_hostile.py included) with ``LD_PRELOAD`` = gcc's
   libasan (the interpreter itself is not instrumented, and ASan's runtime
   must come first) and ``PYTHONMALLOC=malloc`` (every object through
   malloc, so ASan sees a use-after-free of one; pymalloc's arenas hide it).
   Any report fails the run: ASan stops the process at its first error,
   UBSan aborts (``-fno-sanitize-recover``, ``halt_on_error=1``), each with a
   stack trace, and child interpreters inherit all of it. pytest runs with
   ``--capture=sys`` (its default fd capture would swallow a report written
   to fd 2 by a process that then dies) and its output is scanned for
   reports; ASan's also go to files (``log_path``: a child's too, whatever
   became of its stderr), printed at the end. A report anywhere fails the
   run, whatever pytest's exit status.

``detect_leaks=0``: CPython deliberately leaves memory allocated at exit
(interned strings, static types, module state), so LeakSanitizer would
report the interpreter, not us; the leak tests (tests/test_leaks.py) watch
our memory instead. ``allocator_may_return_null=1`` keeps a huge allocation
a MemoryError, as without ASan.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
HEADER = PROJECT / "bocadillo_ws" / "_awaitable.h"
SANITIZE = "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
WARNINGS = "-Wall -Wextra"
# What a copy of the tree for building leaves out: VCS data, envs, caches, build products.
SKIP = {".git", ".tox", "build", "dist", "__pycache__", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
# What a sanitizer's report starts or ends with (UBSan ignores log_path with ASan's runtime loaded).
REPORT_MARKERS = ("runtime error:", "ERROR: AddressSanitizer", "SUMMARY: AddressSanitizer",
                  "SUMMARY: UndefinedBehaviorSanitizer")
RUNTIME_OPTIONS = {
    "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0:allocator_may_return_null=1"
    ":detect_stack_use_after_return=0:print_summary=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:report_error_type=1",
}
# A translation unit as _codec.c uses the header: every entry point _codec.pyx calls is referenced.
TRANSLATION_UNIT = """\
#include <Python.h>
#include "_awaitable.h"

void *bws_entry_points[] = {
    (void *)bws_init_types, (void *)bws_coroutine_method, (void *)bws_await_new,
    (void *)bws_method_awaitable_type, (void *)bws_method_type, (void *)bws_is_iterable_coroutine,
};
"""


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(map(str, args)), flush=True)
    return subprocess.run([str(a) for a in args], check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP or n.startswith(".venv") or n.endswith((".egg-info", ".so", ".c"))}


def asan_runtime() -> str:
    """gcc's libasan.so (an absolute path), or exit saying what is missing."""
    if shutil.which("gcc") is None:
        sys.exit("sanitizers: gcc is needed (apt-get install gcc)")
    path = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        sys.exit("sanitizers: gcc has no libasan.so (apt-get install libasan8, or the gcc version's libasanN)")
    return path


def check_header_warnings(tmp: Path) -> None:
    """_awaitable.h compiles without a warning at -Wall -Wextra (-Werror)."""
    unit = tmp / "awaitable_unit.c"
    unit.write_text(TRANSLATION_UNIT)
    include = sysconfig.get_paths()["include"]
    run("gcc", "-c", "-o", tmp / "awaitable_unit.o", *WARNINGS.split(), "-Werror", f"-I{include}",
        f"-I{HEADER.parent}", unit)
    print("_awaitable.h: no warning at -Wall -Wextra", flush=True)


def build_and_install(tmp: Path) -> None:
    source, dist = tmp / "src", tmp / "dist"
    shutil.copytree(PROJECT, source, ignore=ignore, symlinks=True)
    env = dict(os.environ, CFLAGS=f"{SANITIZE} {WARNINGS} -g -O1", LDFLAGS=SANITIZE)
    env.pop("BOCADILLO_WS_NO_EXTENSIONS", None)
    # -v: the compiler's warnings reach the log; --no-cache-dir: never an uninstrumented wheel from the cache.
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir", "-w", str(dist), str(source)],
        env=env, capture_output=True, text=True,
    )
    log = build.stdout + build.stderr
    (tmp / "build.log").write_text(log)
    if build.returncode != 0:
        print(log[-6000:])
        sys.exit("sanitizers: the instrumented build failed")
    if not re.search(r"^\s*\S*gcc .*-fsanitize=address,undefined.* -c \S*_codec\.c", log, flags=re.M):
        sys.exit("sanitizers: no compile of _codec.c with the sanitizer flags in the build log")
    report_build_warnings(log)
    (wheel,) = dist.glob("*.whl")
    run(sys.executable, "-m", "pip", "uninstall", "-q", "-y", "bocadillo_ws")
    run(sys.executable, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", wheel)
    run(sys.executable, "-m", "pip", "install", "-q", f"{wheel}[test]")


def report_build_warnings(log: str) -> None:
    """Count the compiler's warnings per file; any in our hand-written C fails."""
    found = re.findall(r"^\s*(\S+?):\d+:\d+: warning: .*\[(-W[\w=-]+)\]", log, flags=re.M)
    per_file = Counter((Path(path).name, flag) for path, flag in found)
    for (name, flag), count in sorted(per_file.items()):
        print(f"build warning: {name} {flag} x{count}", flush=True)
    ours = [key for key in per_file if key[0] == HEADER.name]
    if ours:
        sys.exit(f"sanitizers: warnings in {HEADER.name}: {ours}")
    print(f"build: {sum(per_file.values())} warnings, none in {HEADER.name}", flush=True)


def check_instrumented(env: dict[str, str]) -> None:
    """The installed extension is the sanitized build, and it is the live backend."""
    where = "import bocadillo_ws._codec as c; print(c.__file__)"
    so = run(sys.executable, "-I", "-c", where, env=env, capture_output=True).stdout.strip()
    symbols = run("nm", "-D", "--undefined-only", so, capture_output=True).stdout
    for needed in ("__asan_init", "__ubsan_handle_"):
        if needed not in symbols:
            sys.exit(f"sanitizers: {so} does not reference {needed}: not an instrumented build")
    print(f"{so}: instrumented (references __asan_init and __ubsan_handle_*)", flush=True)
    backend = "import sys, bocadillo_ws as b; sys.exit(None if b.BACKEND == 'cython' else f'BACKEND={b.BACKEND!r}')"
    run(sys.executable, "-I", "-c", backend, env=env)


def reports(directory: Path) -> int:
    """Print every sanitizer report written to ``directory``; how many there were."""
    found = sorted(directory.iterdir())
    for path in found:
        print(f"==== {path.name}\n{path.read_text(errors='replace')}", flush=True)
    return len(found)


def run_scanned(command: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Run ``command``, echoing its output; its exit status and the report lines seen in it."""
    print("+", " ".join(command), flush=True)
    seen = 0
    with subprocess.Popen(command, env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            seen += any(marker in line for marker in REPORT_MARKERS)
    sys.stdout.flush()
    return process.returncode, seen


def main(pytest_args: list[str]) -> int:
    runtime = asan_runtime()
    with tempfile.TemporaryDirectory(prefix="bocadillo-sanitizers-") as name:
        tmp = Path(name)
        check_header_warnings(tmp)
        build_and_install(tmp)
        logs = tmp / "reports"
        logs.mkdir()
        env = dict(os.environ, LD_PRELOAD=runtime, PYTHONMALLOC="malloc")
        for variable, options in RUNTIME_OPTIONS.items():
            env[variable] = f"{options}:log_path={logs / variable.split('_')[0].lower()}"
        env.pop("BOCADILLO_WS_NO_EXTENSIONS", None)
        check_instrumented(env)
        # From the project root, as the other envs; -P (not -I, which drops PYTHONMALLOC): the
        # installed package, not the source tree's bocadillo_ws/.
        command = [sys.executable, "-P", "-m", "pytest", "-m", "not slow", "-p", "no:cacheprovider",
                   "--capture=sys", *pytest_args]
        status, seen = run_scanned(command, env)
        count = reports(logs) + seen
    if count:
        print(f"sanitizers: {count} report(s) above: the run fails", flush=True)
        return status or 1
    print("sanitizers: no ASan or UBSan report", flush=True)
    return status


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"sanitizers: {exc}")
