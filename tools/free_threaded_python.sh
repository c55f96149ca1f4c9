#!/usr/bin/env bash
# Makes a free-threaded CPython 3.13 ("python3.13t", configure --disable-gil)
# once, cached in $PREFIX, and prints its path. `tox -e freethreaded` runs the
# package on it.
#
# Why a source build: no free-threaded interpreter is packaged for this machine
# kind (pyenv cannot download; Debian 12, 13 and forky ship no *-nogil binary),
# but the Debian archive serves CPython 3.13's source package. Building it
# takes ~5 min on 2 cores, then the cache makes this a no-op.
# Needs root on a fresh machine (apt-get for the compiler and the headers).
set -euo pipefail

PREFIX="${BOCADILLO_WS_FT_PREFIX:-/var/cache/bocadillo_ws/python3.13t}"
PY="$PREFIX/bin/python3.13t"

is_free_threaded() {
    [ -x "$PY" ] && "$PY" -c 'import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)'
}

if is_free_threaded; then
    echo "$PY"
    exit 0
fi

log() { echo "free_threaded_python: $*" >&2; }

# The headers pip, ssl, ctypes and sqlite need, and a compiler.
DEPS=(build-essential libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev uuid-dev xz-utils)
missing=()
for dep in "${DEPS[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$dep" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$dep")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The source package of trixie's python3.13 through a private apt
# configuration (the machine's own sources list is left alone), from the
# Debian mirror this machine already uses.
mirror="$(grep -rhoE 'https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -v snapshot | sed -n 1p || true)"
[ -n "$mirror" ] || { log "no Debian mirror in /etc/apt/sources.list*"; exit 1; }
mkdir -p "$work/lists/partial" "$work/src"
echo "deb-src [check-valid-until=no] ${mirror%/} trixie main" > "$work/sources.list"
APT=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
     -o "Dir::State::Lists=$work/lists" -o "Acquire::Check-Valid-Until=false"
     -o "APT::Sandbox::User=root")
log "fetching CPython 3.13's source package from $mirror"
apt-get "${APT[@]}" update -qq >&2
(cd "$work/src" && apt-get "${APT[@]}" source --download-only -qq python3.13 >&2)
tar -xJf "$work"/src/python3.13_*.orig.tar.xz -C "$work/src"
srcdir="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'Python-3.13*' | sed -n 1p)"

log "building $(basename "$srcdir") with --disable-gil into $PREFIX (a few minutes)"
(
    cd "$srcdir"
    ./configure --disable-gil --prefix="$PREFIX" --with-ensurepip=install >"$work/configure.log" 2>&1 \
        || { tail -30 "$work/configure.log" >&2; exit 1; }
    make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -60 "$work/make.log" >&2; exit 1; }
    make install >"$work/install.log" 2>&1 || { tail -60 "$work/install.log" >&2; exit 1; }
)
is_free_threaded || { log "$PY is not a free-threaded build"; exit 1; }
log "built $("$PY" -VV)"
echo "$PY"
