#!/usr/bin/env bash
# Debian's redis-server for the Redis tests of bocadillo_ws.Hub (tests/
# test_hub_redis.py starts its own on 127.0.0.1, a free port). Nothing to do
# when it is there; otherwise installed with apt-get (root only). Fails loudly
# when it is missing and cannot be installed.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_redis: redis-server is needed: sudo apt-get install redis-server" >&2
    exit 1
fi
echo "ensure_redis: installing redis-server (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update && apt-get install -y --no-install-recommends redis-server; }; then
    echo "ensure_redis: FAILED to install redis-server" >&2
    exit 1
fi
