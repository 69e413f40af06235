#!/usr/bin/env bash
# The web client in a real browser: two headless Chromium users and one chat-cli user exchange
# broadcasts, a room message, DMs and a multicast through `chat-cli serve --web` on loopback, and
# must all see the same order; a screenshot of each page goes to target/web-screenshots/.
#
# Needs Debian's chromium and chromium-driver: installed here with apt-get when missing (as root);
# when they cannot be installed the test is skipped with the reason printed, and exits 0.
#
# Usage: tests/web/run.sh            (from anywhere; builds chat-cli first)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
skip() { echo "SKIPPED: browser test: $*"; exit 0; }

if ! have; then
    if [ "$(id -u)" != 0 ]; then
        skip "chromium and chromium-driver are not installed and this is not root (apt-get install chromium chromium-driver)"
    fi
    command -v apt-get >/dev/null 2>&1 || skip "chromium and chromium-driver are not installed and there is no apt-get"
    echo "installing chromium and chromium-driver with apt-get..."
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
        >"${TMPDIR:-/tmp}/chat-web-apt.log" 2>&1; then
        skip "apt-get could not install chromium chromium-driver (no network?): see ${TMPDIR:-/tmp}/chat-web-apt.log"
    fi
    have || skip "chromium or chromedriver still missing after apt-get"
fi
command -v python3 >/dev/null 2>&1 || skip "python3 (the WebDriver driver) is missing"

cargo build -q -p chat-cli
target="${CARGO_TARGET_DIR:-$root/target}"
exec python3 tests/web/browser_test.py --bin "$target/debug/chat-cli" --out "$target/web-screenshots"
