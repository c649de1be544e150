#!/usr/bin/env bash
# End-to-end test of the tenant dashboard: the real debug `tandem` binary, headless
# Debian Chromium (driven by playwright-core) and a stock y-websocket client, through
# the journey of a new user. Screenshots of every page go to
# $CARGO_TARGET_DIR/dashboard-artifacts/*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"

cargo build -p tandem-server --bin tandem --locked

t=tests/dashboard
if [ ! -f "$t/node_modules/.package-lock.json" ] || ! cmp -s "$t/package-lock.json" "$t/node_modules/.tandem-installed-lock"; then
  (cd "$t" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$t/package-lock.json" "$t/node_modules/.tandem-installed-lock"
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test-dashboard.sh: installing Debian's chromium"
    apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
  else
    echo "test-dashboard.sh: /usr/bin/chromium is missing: apt-get install -y chromium" >&2
    exit 1
  fi
fi

export TANDEM_ARTIFACTS="${TANDEM_ARTIFACTS:-$CARGO_TARGET_DIR/dashboard-artifacts}"
mkdir -p "$TANDEM_ARTIFACTS"
cd "$t"
node --test --test-concurrency=1 --test-timeout=180000 ./*.test.mjs
echo "test-dashboard.sh: screenshots in $TANDEM_ARTIFACTS"
