#!/usr/bin/env bash
# Benchmarks Tandem against the stock y-websocket Node server (@y/websocket-server 0.1.1)
# with tandem-bench, on this machine, and prints a side-by-side summary.
#
# Scenarios, each on a freshly started server so memory baselines are clean:
#   latency  LAT_ROOMS x LAT_CLIENTS clients, every client writes LAT_RATE updates/s
#   ramp     same shape, rate doubling per step from RAMP_START until delivery < 99 %
#            or p99 > RAMP_MAX_P99; reports the highest passing rate
#   idle     IDLE_CONNECTIONS synced, idle connections over IDLE_ROOMS rooms; server
#            RSS per connection
#
# Usage: scripts/bench-compare.sh            (both servers)
#        SERVERS=node scripts/bench-compare.sh  (or SERVERS=tandem)
#        QUICK=1 scripts/bench-compare.sh    (short run, for trying the script out)
# Every knob below can be overridden from the environment. Results (one JSON report
# per server and scenario, plus server logs) go to $OUT (default: a new temp dir).
# Everything runs on 127.0.0.1; every process started here is killed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}
NODE_DIR=$ROOT/bench/node
NODE_SERVER_VERSION=0.1.1

SERVERS=${SERVERS:-"node tandem"}
if [[ -n ${QUICK:-} ]]; then
  : "${LAT_DURATION:=3s}" "${RAMP_STEPS:=3}" "${RAMP_DURATION:=2s}" "${IDLE_CONNECTIONS:=500}"
fi
LAT_ROOMS=${LAT_ROOMS:-10}
LAT_CLIENTS=${LAT_CLIENTS:-10}
LAT_RATE=${LAT_RATE:-5}
LAT_DURATION=${LAT_DURATION:-10s}
RAMP_START=${RAMP_START:-5}
RAMP_FACTOR=${RAMP_FACTOR:-2}
RAMP_STEPS=${RAMP_STEPS:-8}
RAMP_DURATION=${RAMP_DURATION:-5s}
RAMP_MAX_P99=${RAMP_MAX_P99:-250ms}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
IDLE_ROOMS=${IDLE_ROOMS:-50}
IDLE_SETTLE=${IDLE_SETTLE:-5s}
OUT=${OUT:-$(mktemp -d -t tandem-bench-compare.XXXXXX)}
mkdir -p "$OUT"

STARTED_PIDS=()
TEMP_DIRS=()
SERVER_PID=
SERVER_URL=

# alive PID: running and not a zombie (an exited child stays a zombie until reaped, and
# kill -0 still succeeds on it).
alive() {
  [[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# terminate PID: SIGTERM, up to 5 s grace, then SIGKILL; reaps it.
terminate() {
  local pid=$1
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid dir
  for pid in "${STARTED_PIDS[@]}"; do terminate "$pid"; done
  for dir in "${TEMP_DIRS[@]}"; do rm -rf "$dir"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-compare: %s\n' "$*" >&2; exit 1; }

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
if (( $(ulimit -n) < IDLE_CONNECTIONS + 1000 )); then
  ulimit -n $((IDLE_CONNECTIONS + 1000)) 2>/dev/null ||
    die "ulimit -n is $(ulimit -n); need at least $((IDLE_CONNECTIONS + 1000)) for $IDLE_CONNECTIONS connections"
fi

# --- builds and installs -------------------------------------------------------------

log "building tandem-bench (release)"
cargo build --release --quiet -p tandem-bench --manifest-path "$ROOT/Cargo.toml"
BENCH=$CARGO_TARGET_DIR/release/tandem-bench

NODE_MAIN=$NODE_DIR/node_modules/@y/websocket-server/src/server.js
if [[ " $SERVERS " == *" node "* ]]; then
  installed=$(node -p "require('$NODE_DIR/node_modules/@y/websocket-server/package.json').version" 2>/dev/null || true)
  if [[ $installed != "$NODE_SERVER_VERSION" ]]; then
    log "installing @y/websocket-server@$NODE_SERVER_VERSION into bench/node"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  [[ -f $NODE_MAIN ]] || die "$NODE_MAIN missing after npm ci"
fi

# TANDEM_BIN=path benchmarks that binary instead of building this tree's (to compare two
# commits' release builds in one sitting).
if [[ -n ${TANDEM_BIN:-} ]]; then
  [[ -x $TANDEM_BIN ]] || die "TANDEM_BIN=$TANDEM_BIN is not an executable"
else
  TANDEM_BIN=$CARGO_TARGET_DIR/release/tandem
  if [[ " $SERVERS " == *" tandem "* ]]; then
    log "building tandem (release)"
    if ! cargo build --release --quiet -p tandem-server --bin tandem --manifest-path "$ROOT/Cargo.toml"; then
      die "cargo build --release -p tandem-server failed (run with SERVERS=node to benchmark only the Node server)"
    fi
  fi
fi

# --- servers -------------------------------------------------------------------------

free_port() {
  node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close() })"
}

# wait_for_line FILE PATTERN PID: until FILE has a line matching PATTERN (10 s at most).
wait_for_line() {
  local file=$1 pattern=$2 pid=$3
  for _ in $(seq 200); do
    grep -q -- "$pattern" "$file" 2>/dev/null && return 0
    alive "$pid" || { cat "$file" >&2; die "server exited during startup (log: $file)"; }
    sleep 0.05
  done
  die "server did not print '$pattern' within 10 s (log: $file)"
}

# start_server NAME SCENARIO: sets SERVER_PID and SERVER_URL (the tandem-bench --url).
start_server() {
  local name=$1 scenario=$2 port logf=$OUT/$1-$2.log
  case $name in
    node)
      port=$(free_port)
      # exec: the PID we record is node's own, so its RSS is the server's.
      (cd "$NODE_DIR" && HOST=127.0.0.1 PORT=$port exec node "$NODE_MAIN") >"$logf" 2>&1 &
      SERVER_PID=$!
      STARTED_PIDS+=("$SERVER_PID")
      wait_for_line "$logf" "running at '127.0.0.1' on port $port" "$SERVER_PID"
      SERVER_URL=ws://127.0.0.1:$port
      ;;
    tandem)
      local data
      data=$(mktemp -d -t tandem-bench-data.XXXXXX)
      TEMP_DIRS+=("$data")
      "$TANDEM_BIN" serve --listen 127.0.0.1:0 --data-dir "$data" --allow-anonymous \
        >"$logf" 2>"$OUT/$name-$scenario.stderr.log" &
      SERVER_PID=$!
      STARTED_PIDS+=("$SERVER_PID")
      wait_for_line "$logf" '^listening on http://' "$SERVER_PID"
      port=$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9]*\).*#\1#p' "$logf" | head -n1)
      [[ -n $port ]] || die "could not read tandem's port from: $(head -n1 "$logf")"
      SERVER_URL=ws://127.0.0.1:$port/v1/connect
      ;;
    *) die "unknown server $name" ;;
  esac
  # Let the runtime finish starting before the RSS baseline is taken.
  sleep 0.5
}

stop_server() {
  if ! alive "$SERVER_PID"; then
    log "WARNING: server $SERVER_PID had already exited (crash?); see its log in $OUT"
  fi
  terminate "$SERVER_PID"
}

# run_scenario SERVER SCENARIO BENCH_ARGS...: fresh server, one bench run, JSON to $OUT.
run_scenario() {
  local name=$1 scenario=$2
  shift 2
  start_server "$name" "$scenario"
  log "$name $scenario: tandem-bench --url $SERVER_URL $*"
  if ! "$BENCH" --url "$SERVER_URL" --server-pid "$SERVER_PID" --room-prefix "$scenario" --json "$@" \
    >"$OUT/$name-$scenario.json" 2>"$OUT/$name-$scenario.bench.log"; then
    log "WARNING: tandem-bench failed for $name $scenario: $(tail -n3 "$OUT/$name-$scenario.bench.log")"
  fi
  stop_server
}

for name in $SERVERS; do
  run_scenario "$name" latency --rooms "$LAT_ROOMS" --clients "$LAT_CLIENTS" \
    --rate "$LAT_RATE" --duration "$LAT_DURATION" --warmup 2s
  run_scenario "$name" ramp --rooms "$LAT_ROOMS" --clients "$LAT_CLIENTS" \
    --ramp --rate "$RAMP_START" --ramp-factor "$RAMP_FACTOR" --ramp-steps "$RAMP_STEPS" \
    --duration "$RAMP_DURATION" --warmup 1s --max-p99 "$RAMP_MAX_P99"
  run_scenario "$name" idle --idle --connections "$IDLE_CONNECTIONS" --rooms "$IDLE_ROOMS" \
    --settle "$IDLE_SETTLE" --concurrency 200 --connect-timeout 30s
done

echo
echo "tandem-bench comparison on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ); tandem $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), node = @y/websocket-server $NODE_SERVER_VERSION on node $(node --version)"
echo "bench and servers share this machine; results in $OUT"
echo
# shellcheck disable=SC2086 # SERVERS is a word list
node "$NODE_DIR/summarize.mjs" "$OUT" $SERVERS
