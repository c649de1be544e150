#!/usr/bin/env bash
# What the control plane costs on the hot path, measured in one run: two servers from
# the same build, benched one at a time with the same tandem-bench scenario, alternately
#   off: --metering false, connections without a token (--allow-anonymous): no usage
#        counting, no plan limits;
#   on:  metering on, connections with a client token: token check on connect, plan
#        limits per connection (message and byte buckets, connection caps, document-size
#        check), server-attached user info in presence, usage counters and flushes;
# ROUNDS times each (interleaved, so drift hits both alike). Prints per-round figures
# and the medians of delivered updates/s, p50/p99 latency and server CPU.
#
# Usage: scripts/bench-control.sh     (ROUNDS, ROOMS, CLIENTS, RATE, DURATION from env)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}
ROUNDS=${ROUNDS:-3}
ROOMS=${ROOMS:-10}
CLIENTS=${CLIENTS:-10}
RATE=${RATE:-20}
DURATION=${DURATION:-5s}
OUT=${OUT:-$(mktemp -d -t tandem-bench-control.XXXXXX)}
mkdir -p "$OUT"

PIDS=()
DATA=$(mktemp -d -t tandem-bench-control-data.XXXXXX)
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '== %s\n' "$*" >&2; }

log "building tandem and tandem-bench (release)"
cargo build --release --quiet -p tandem-server -p tandem-bench --manifest-path "$ROOT/Cargo.toml"
TANDEM=$CARGO_TARGET_DIR/release/tandem
BENCH=$CARGO_TARGET_DIR/release/tandem-bench

# Limits high enough that the bench never trips them: they are checked, not hit.
cat > "$DATA/plans.toml" <<'PLANS'
[free]
connections-per-project = 1000000
connections-per-room = 100000
rooms-per-project = 1000000
max-document-bytes = 10000000000
messages-per-second = 1000000
message-burst = 1000000
bytes-per-second = 10000000000
byte-burst = 10000000000
PLANS

# start NAME ARGS...: starts a server, waits for its address; sets ADDR and PID.
start() {
  local name=$1
  shift
  "$TANDEM" serve --listen 127.0.0.1:0 --data-dir "$DATA/$name" --plans "$DATA/plans.toml" \
    "$@" >"$OUT/$name.out" 2>"$OUT/$name.log" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do grep -q '^  secret key: ' "$OUT/$name.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed -n 's|^listening on http://||p' "$OUT/$name.out")
  [[ -n $ADDR ]] || { echo "$name server did not start: $(cat "$OUT/$name.log")" >&2; exit 1; }
}
start off --allow-anonymous --metering false
OFF_ADDR=$ADDR OFF_PID=$PID
start on
ON_ADDR=$ADDR ON_PID=$PID
KEY=$(sed -n 's|^  secret key: \(sk_[A-Za-z0-9]*\).*|\1|p' "$OUT/on.out")
TOKEN=$(curl -sf "http://$ON_ADDR/v1/tokens" -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' \
  -d '{"userId":"bench","userInfo":{"name":"bench"},"permissions":{"*":["room:write"]},"expiresIn":86400}' |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')

for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    if [[ $mode == on ]]; then
      addr=$ON_ADDR pid=$ON_PID query=(--query "token=$TOKEN")
    else
      addr=$OFF_ADDR pid=$OFF_PID query=()
    fi
    log "round $round, control plane $mode"
    "$BENCH" --url "ws://$addr/v1/connect" --rooms "$ROOMS" --clients "$CLIENTS" \
      --rate "$RATE" --duration "$DURATION" --warmup 1s --server-pid "$pid" \
      --room-prefix "$mode-$round" "${query[@]}" --json >"$OUT/$mode-$round.json"
  done
done

node - "$OUT" "$ROUNDS" <<'JS'
const fs = require('fs')
const [dir, rounds] = [process.argv[2], Number(process.argv[3])]
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const rows = { off: [], on: [] }
for (let r = 1; r <= rounds; r++) for (const mode of ['off', 'on']) {
  const step = JSON.parse(fs.readFileSync(`${dir}/${mode}-${r}.json`)).steps[0]
  rows[mode].push(step)
  console.log(`round ${r} ${mode.padEnd(3)}: ${step.delivered_per_sec.toFixed(0)} delivered/s, p50 ${step.latency_ms.p50.toFixed(2)} ms, p99 ${step.latency_ms.p99.toFixed(2)} ms, delivery ${step.delivery_pct.toFixed(2)} %, server cpu ${(step.server_cpu_pct ?? 0).toFixed(0)} %`)
}
const m = (mode, f) => median(rows[mode].map(f))
const off = { tput: m('off', s => s.delivered_per_sec), p50: m('off', s => s.latency_ms.p50), p99: m('off', s => s.latency_ms.p99), cpu: m('off', s => s.server_cpu_pct ?? 0) }
const on = { tput: m('on', s => s.delivered_per_sec), p50: m('on', s => s.latency_ms.p50), p99: m('on', s => s.latency_ms.p99), cpu: m('on', s => s.server_cpu_pct ?? 0) }
console.log(`\nmedians over ${rounds} rounds (off = no metering, no token, no limits; on = metering + token + plan limits):`)
console.log(`  delivered/s  off ${off.tput.toFixed(0)}  on ${on.tput.toFixed(0)}  on/off ${(on.tput / off.tput).toFixed(3)}`)
console.log(`  p50 ms       off ${off.p50.toFixed(2)}  on ${on.p50.toFixed(2)}  on/off ${(on.p50 / off.p50).toFixed(3)}`)
console.log(`  p99 ms       off ${off.p99.toFixed(2)}  on ${on.p99.toFixed(2)}  on/off ${(on.p99 / off.p99).toFixed(3)}`)
console.log(`  server cpu % off ${off.cpu.toFixed(0)}  on ${on.cpu.toFixed(0)}  on/off ${(on.cpu / off.cpu).toFixed(3)}`)
JS
echo "reports in $OUT"
