#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the tox env `browser` (never a
# browser download): nothing to do when both are there; otherwise installed
# with apt-get (root only), with one font so screenshots show text. Fails
# loudly when they are missing and cannot be installed.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: /usr/bin/chromium and /usr/bin/chromedriver are needed:" \
        "sudo apt-get install chromium chromium-driver" >&2
    exit 1
fi
echo "ensure_chromium: installing chromium and chromium-driver (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core; }; then
    echo "ensure_chromium: FAILED to install chromium and chromium-driver" >&2
    exit 1
fi
