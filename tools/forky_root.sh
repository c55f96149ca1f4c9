#!/usr/bin/env bash
# CPython 3.14 and 3.15 for the test matrix and the benchmarks, from a Debian
# forky root: the host (Debian 12) has neither, and forky's python3.14/3.15
# packages need forky's glibc, so they run chrooted in a debootstrap root.
#
#   tools/forky_root.sh ensure                 make the root once (cached), print its path
#   tools/forky_root.sh run [--env NAME]... [--bind DIR]... -- CMD [ARG]...
#                                              run CMD inside it, from the current directory
#                                              (the project's root when outside it and the DIRs)
#
# The root lives outside the repository (BOCADILLO_WS_FORKY_ROOT, default
# /var/cache/bocadillo_ws/forky) and is reused while its python3.14 and
# python3.15 work. `run` bind-mounts the project at the same absolute path, so
# paths match inside and out (so is each --bind DIR), in a private mount namespace: the mounts vanish
# with the command even if it is killed, and the trap unmounts them on any exit.
# CMD sees a clean environment (env -i), plus only the variables named by --env.
# Needs root (debootstrap, chroot, mount), as CI runs.
set -euo pipefail

ROOT=${BOCADILLO_WS_FORKY_ROOT:-/var/cache/bocadillo_ws/forky}
LOCK="$ROOT.lock"
PROJECT=$(cd "$(dirname "$0")/.." && pwd -P)
MIRROR=${BOCADILLO_WS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3.14-dev,python3.14-venv,python3.15-dev,python3.15-venv,gcc,g++,make,git,ca-certificates
# Installed into an existing root too, when missing: the Hub's Redis tests
# start a redis-server of their own (tests/redis_server.py), as on the host.
EXTRA_PACKAGES=(redis-server)
CLEAN_PATH=/usr/local/bin:/usr/bin:/bin

die() { echo "forky_root.sh: $*" >&2; exit 1; }

# True when $1 holds a finished root whose interpreters and compiler run.
root_works() {
    [ -f "$1/.bocadillo_ws-ready" ] &&
        chroot "$1" /usr/bin/env -i PATH=$CLEAN_PATH sh -c \
            'python3.14 -c "import venv, sysconfig" && python3.15 -c "import venv, sysconfig" && gcc --version' \
            >/dev/null 2>&1
}

# Refuses to delete a directory that still has something mounted below it
# (an rm -rf through a bind mount of /dev would be a disaster).
remove_tree() {
    if findmnt -rno TARGET | grep -q "^$1\(/\|$\)"; then
        die "$1 has mounts below it; not removing it"
    fi
    rm -rf --one-file-system "$1"
}

create_root() {
    local tmp="$ROOT.partial"
    [ -e "$tmp" ] && remove_tree "$tmp"
    if ! command -v debootstrap >/dev/null 2>&1; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
    fi
    # Debian 12's debootstrap has no script for forky: the sid one fits.
    # Its own mounts (proc, sys) live and die in a private namespace.
    echo "forky_root.sh: creating $ROOT (about a minute, ~1 GB)" >&2
    unshare --mount --propagation private \
        debootstrap --variant=minbase --include="$PACKAGES,$(IFS=,; echo "${EXTRA_PACKAGES[*]}")" \
        forky "$tmp" "$MIRROR" /usr/share/debootstrap/scripts/sid
    chroot "$tmp" /usr/bin/env -i PATH=$CLEAN_PATH apt-get clean
    touch "$tmp/.bocadillo_ws-ready"
    root_works "$tmp" || die "the new root's python3.14/python3.15/gcc do not run"
    [ -e "$ROOT" ] && remove_tree "$ROOT"
    mv "$tmp" "$ROOT"
}

# Makes the root once; a second run waits on the lock, then finds it made.
ensure_root() {
    [ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
    mkdir -p "$(dirname "$ROOT")"
    exec 9>"$LOCK"
    flock 9
    # (an if, not ||: set -e must stay in force inside create_root)
    if ! root_works "$ROOT"; then create_root; fi
    # The host's DNS and extra CA certificates, so pip inside reaches the index
    # (the bundle is rebuilt when the host's set changed since the last run).
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    local stamp="$ROOT/etc/ssl/certs/.bocadillo_ws-host-cas" sums
    sums=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$sums" ]; then
        rm -f "$ROOT"/usr/local/share/ca-certificates/*.crt
        cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
        chroot "$ROOT" /usr/bin/env -i PATH=$CLEAN_PATH /usr/sbin/update-ca-certificates --fresh >/dev/null
        echo "$sums" >"$stamp"
    fi
    local missing=() package
    for package in "${EXTRA_PACKAGES[@]}"; do
        chroot "$ROOT" dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        # No service may start inside the root (policy-rc.d: 101 = forbidden);
        # the mirror's forky Release may be past its Valid-Until (debootstrap
        # does not check it, apt does).
        printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d" && chmod +x "$ROOT/usr/sbin/policy-rc.d"
        chroot "$ROOT" /usr/bin/env -i PATH=$CLEAN_PATH:/usr/sbin:/sbin DEBIAN_FRONTEND=noninteractive \
            sh -c 'apt-get update -q -o Acquire::Check-Valid-Until=false &&
                apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
            sh "${missing[@]}"
    fi
    flock -u 9
    exec 9>&-
}

# Inside the private mount namespace: mount, run, unmount.
run_inside() {
    local cwd=$1; shift
    local -a envs=() binds=("$PROJECT")
    while [ "$1" != -- ]; do
        case $1 in --bind=*) binds+=("${1#--bind=}") ;; *) envs+=("$1") ;; esac
        shift
    done
    shift
    mounted=()  # global: the EXIT trap runs after this function has returned
    unmount_all() {
        local i
        for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" || true; done
    }
    trap unmount_all EXIT
    mount -t proc proc "$ROOT/proc" && mounted+=("$ROOT/proc")
    mount --bind /dev "$ROOT/dev" && mounted+=("$ROOT/dev")
    mount --bind /dev/pts "$ROOT/dev/pts" && mounted+=("$ROOT/dev/pts")
    mount -t tmpfs tmpfs "$ROOT/tmp" && mounted+=("$ROOT/tmp")
    local dir
    for dir in "${binds[@]}"; do
        mkdir -p "$ROOT$dir"
        mount --bind "$dir" "$ROOT$dir" && mounted+=("$ROOT$dir")
    done
    local status=0
    chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=$CLEAN_PATH LANG=C.UTF-8 "${envs[@]}" \
        sh -c 'cd "$1" && shift && exec "$@"' sh "$cwd" "$@" || status=$?
    return $status
}

cmd_run() {
    local -a envs=() binds=()
    while [ $# -gt 0 ]; do
        case $1 in
            --env) [ -n "${!2+set}" ] && envs+=("$2=${!2}"); shift 2 ;;
            --bind) binds+=("--bind=$(cd "$2" && pwd -P)"); shift 2 ;;
            --) shift; break ;;
            *) die "run: unknown option $1 (usage: run [--env NAME]... [--bind DIR]... -- CMD...)" ;;
        esac
    done
    [ $# -gt 0 ] || die "run: no command"
    local cwd
    cwd=$(pwd -P)
    local inside=0 bind
    for bind in "--bind=$PROJECT" "${binds[@]}"; do
        case $cwd/ in "${bind#--bind=}"/*) inside=1 ;; esac
    done
    [ $inside = 1 ] || cwd=$PROJECT
    ensure_root
    exec unshare --mount --propagation private \
        bash "$PROJECT/tools/forky_root.sh" __inside "$cwd" "${envs[@]}" "${binds[@]}" -- "$@"
}

case ${1:-} in
    ensure) ensure_root; echo "$ROOT" ;;
    run) shift; cmd_run "$@" ;;
    __inside) shift; run_inside "$@" ;;
    *) die "usage: $0 ensure | run [--env NAME]... [--bind DIR]... -- CMD [ARG]..." ;;
esac
