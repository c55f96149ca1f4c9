#!/usr/bin/env bash
# Coverage-guided differential fuzzing of the compiled backend (atheris), one command:
#
#   bash fuzz/run.sh [SECONDS]        # default 600
#
# 1. a separate venv (FUZZ_VENV, default /tmp/bocadillo-ws-fuzz-venv) with
#    fuzz/requirements.txt, on a CPython 3.11-3.13 (FUZZ_PYTHON to choose);
# 2. when clang is on PATH, a copy of the working tree's bocadillo_ws in
#    FUZZ_BUILD (default /tmp/bocadillo-ws-fuzz-build) with the extension
#    compiled by clang with SanitizerCoverage, so the compiled code's own
#    branches guide the fuzzer (FUZZ_ASAN=1 adds AddressSanitizer when the
#    installed atheris ships asan_with_fuzzer.so, i.e. was built from source);
#    without clang, the tree's own build is fuzzed (pip install -e . first),
#    with coverage of the Python side only;
# 3. the fuzzer, for SECONDS: corpus in fuzz/corpus (git-ignored), seeds in
#    fuzz/seeds, failing inputs kept in fuzz/crashes/ (replayed by
#    `pytest fuzz/`). Nothing in the repository is built or changed but those.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_SECONDS="${1:-600}"

PYTHON="${FUZZ_PYTHON:-}"
if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
            PYTHON="$candidate"
            break
        fi
    done
fi
[ -n "$PYTHON" ] || { echo "no CPython 3.11-3.13 found: set FUZZ_PYTHON" >&2; exit 2; }

VENV="${FUZZ_VENV:-/tmp/bocadillo-ws-fuzz-venv}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q -r fuzz/requirements.txt

LOG="$(mktemp -t bocadillo-ws-fuzz.XXXXXX.log)"
if command -v clang >/dev/null 2>&1; then
    BUILD="${FUZZ_BUILD:-/tmp/bocadillo-ws-fuzz-build}"
    rm -rf "$BUILD" && mkdir -p "$BUILD/bocadillo_ws"
    cp setup.py pyproject.toml README.md MANIFEST.in "$BUILD/"
    cp bocadillo_ws/*.py bocadillo_ws/*.pyx bocadillo_ws/*.pyi bocadillo_ws/py.typed "$BUILD/bocadillo_ws/"
    CFLAGS="-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp"
    LDSHARED="clang -shared"
    if [ "${FUZZ_ASAN:-0}" = 1 ]; then
        ASAN_LIB="$("$VENV/bin/python" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')"
        [ -f "$ASAN_LIB" ] || { echo "FUZZ_ASAN=1 needs atheris built from source (no $ASAN_LIB)" >&2; exit 2; }
        CFLAGS="$CFLAGS -fsanitize=address"
        LDSHARED="$LDSHARED -fsanitize=address"
        # PYTHONMALLOC=malloc: Python objects come from malloc, so ASan sees them too.
        export LD_PRELOAD="$ASAN_LIB" ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1" PYTHONMALLOC=malloc
    fi
    echo "building an instrumented copy of the extension in $BUILD ..."
    (cd "$BUILD" && env -u LD_PRELOAD CC=clang LDSHARED="$LDSHARED" CFLAGS="$CFLAGS" \
        "$VENV/bin/python" setup.py -q build_ext --inplace) >"$LOG" 2>&1 || { cat "$LOG"; exit 1; }
    export BOCADILLO_WS_SRC="$BUILD"
else
    echo "no clang on PATH: fuzzing the tree's own build (Python-side coverage only)"
fi

mkdir -p fuzz/corpus fuzz/crashes
before="$(find fuzz/crashes -type f ! -name README.md | wc -l)"
set +e
"$VENV/bin/python" fuzz/fuzz_codec.py fuzz/corpus fuzz/seeds \
    -artifact_prefix=fuzz/crashes/ -max_total_time="$RUN_SECONDS" -timeout=30 -print_final_stats=1 2>&1 |
    grep -v '^INFO: Instrumenting' | tee "$LOG"
status="${PIPESTATUS[0]}"
set -e
after="$(find fuzz/crashes -type f ! -name README.md | wc -l)"
echo
echo "== summary (log: $LOG)"
grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb' "$LOG" || true
grep -E '^#[0-9]+' "$LOG" | tail -n 1 || true
echo "corpus: $(find fuzz/corpus -type f | wc -l) inputs; new crashing inputs in fuzz/crashes: $((after - before))"
exit "$status"
