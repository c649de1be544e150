#!/usr/bin/env bash
# What a hostile presence campaign costs the server's memory, and whether it comes back:
# starts `tandem serve` (anonymous, fresh data directory), reads VmRSS, runs
# tests/js/hostile.mjs (CASES sockets, PARALLEL at a time, each sending one deep, oversized
# or malformed awareness state), then waits until the room has unloaded and reads VmRSS
# again. Prints baseline, peak (VmHWM) and after, in KiB. A measurement, not a test.
#
#   TANDEM_BIN=target/release/tandem CASES=300 PARALLEL=10 scripts/bench-hostile-rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TANDEM_BIN:-${CARGO_TARGET_DIR:-target}/release/tandem}
CASES=${CASES:-300}
PARALLEL=${PARALLEL:-10}
SETTLE=${SETTLE:-10}
data=$(mktemp -d)
log="$data/server.log"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$data" --allow-anonymous \
  --room-idle-timeout 2s >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 300); do
  addr=$(sed -n 's#^listening on http://\([^ ]*\).*#\1#p' "$log" | head -1)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "server did not start"; cat "$log"; exit 1; }
rss() { awk "/^$1:/ {print \$2}" "/proc/$pid/status"; }
rooms() { curl -s "http://$addr/metrics" | awk '/^tandem_rooms_loaded / {print $2}'; }
[ -d tests/js/node_modules/ws ] || (cd tests/js && npm ci --no-audit --no-fund >/dev/null)
# Warm up: one case first, so the baseline includes a loaded room and a served socket.
node tests/js/hostile.mjs "ws://$addr/v1/connect" warmup --cases 1 --parallel 1 >/dev/null
sleep 3
base=$(rss VmRSS)
result=$(node tests/js/hostile.mjs "ws://$addr/v1/connect" hostile --cases "$CASES" --parallel "$PARALLEL")
during=$(rss VmRSS)
for _ in $(seq 1 100); do
  [ "$(rooms)" = "0" ] && break
  sleep 0.2
done
sleep "$SETTLE"
after=$(rss VmRSS)
peak=$(rss VmHWM)
echo "campaign: $result"
echo "rss_kib baseline=$base right_after=$during peak=$peak after_idle=$after ratio=$(awk "BEGIN {printf \"%.2f\", $after / $base}")"
