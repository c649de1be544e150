#!/usr/bin/env bash
# What clustering costs on the hot path, measured in one run with tandem-bench:
#   single:  one `tandem serve` on a fresh Postgres database, no Redis;
#   cluster: three `tandem serve` nodes on another fresh Postgres database and one Redis
#            (a random --cluster-prefix), each room's clients split over the three
#            (client k of room r on node (r + k) mod 3), so most deliveries cross nodes:
#            stored in Postgres by the writer's node, then relayed over Redis pub/sub.
# Same load for both (ROOMS x CLIENTS, WRITERS writers per room at RATE updates/s each),
# ROUNDS rounds, interleaved (the order alternates between rounds) so drift hits both
# alike. Prints per-round figures and the medians of p50/p99 relay latency, delivered
# updates/s, delivery, server CPU (summed over the nodes) and the whole machine's CPU
# (Postgres, Redis and the bench included), with cluster/single ratios.
#
# Needs Postgres on PG_HOST:PG_PORT (user PG_USER, trust auth; two databases
# tandem_bench_<random>_{single,cluster} are created and dropped), Redis at REDIS_URL,
# psql, redis-cli, curl and node. Every process started here is killed by PID on exit.
#
# Usage: scripts/bench-cluster.sh   (ROUNDS, ROOMS, CLIENTS, WRITERS, RATE, DURATION,
#                                    WARMUP from the environment; QUICK=1 for a short try;
#                                    before each run it waits up to QUIET_TIMEOUT s (300)
#                                    for the machine to use under QUIET_PCT % (30) of a core)
#        TANDEM=/path/to/tandem scripts/bench-cluster.sh   (use that binary, don't build it)
#        CLUSTER_EXTRA='--cluster-catchup-interval 1h' ...   (more `tandem serve` options
#                          for the three cluster nodes, split on spaces)
#        NO_REDIS=1 ...   (only for trying the script with a build without --redis-url: the
#                          three nodes then don't relay to each other and most deliveries
#                          are lost; the figures mean nothing)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}
if [[ -n ${QUICK:-} ]]; then
  : "${ROUNDS:=1}" "${DURATION:=3s}" "${WARMUP:=1s}"
fi
ROUNDS=${ROUNDS:-3}
ROOMS=${ROOMS:-50}
CLIENTS=${CLIENTS:-6}
WRITERS=${WRITERS:-2}
RATE=${RATE:-10}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
NODES=3
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
OUT=${OUT:-$(mktemp -d -t tandem-bench-cluster.XXXXXX)}
mkdir -p "$OUT"

SUFFIX=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
DB_SINGLE=tandem_bench_${SUFFIX}_single
DB_CLUSTER=tandem_bench_${SUFFIX}_cluster
PREFIX=tandem-bench-$SUFFIX
DATA=$(mktemp -d -t tandem-bench-cluster-data.XXXXXX)
PIDS=()
DBS=()

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-cluster: %s\n' "$*" >&2; exit 1; }
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }

# alive PID: running and not a zombie.
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
  local pid db
  for pid in "${PIDS[@]}"; do terminate "$pid"; done
  for db in "${DBS[@]}"; do
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
      printf 'bench-cluster: could not drop database %s\n' "$db" >&2
  done
  # The cluster's Redis keys, if it left any (pub/sub channels leave none).
  redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" 2>/dev/null |
    while read -r key; do redis-cli -u "$REDIS_URL" del "$key" >/dev/null 2>&1 || true; done
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in psql redis-cli node curl; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
psql_admin -c 'SELECT 1' >/dev/null || die "cannot reach Postgres as $PG_USER at $PG_HOST:$PG_PORT"
[[ $(redis-cli -u "$REDIS_URL" ping 2>/dev/null) == PONG ]] || die "cannot reach Redis at $REDIS_URL"

if [[ -n ${TANDEM:-} ]]; then
  log "building tandem-bench (release); tandem is $TANDEM"
  cargo build --release --quiet -p tandem-bench --manifest-path "$ROOT/Cargo.toml"
else
  log "building tandem and tandem-bench (release)"
  cargo build --release --quiet -p tandem-server --bin tandem -p tandem-bench \
    --manifest-path "$ROOT/Cargo.toml"
  TANDEM=$CARGO_TARGET_DIR/release/tandem
fi
BENCH=$CARGO_TARGET_DIR/release/tandem-bench
read -r -a EXTRA <<<"${CLUSTER_EXTRA:-}"
CLUSTER_ARGS=(--redis-url "$REDIS_URL" --cluster-prefix "$PREFIX" "${EXTRA[@]}")
if [[ -n ${NO_REDIS:-} ]]; then
  log "WARNING: NO_REDIS is set: three unconnected nodes, cluster figures are meaningless"
  CLUSTER_ARGS=("${EXTRA[@]}")
elif ! "$TANDEM" serve --help | grep -q -- '--redis-url'; then
  die "$TANDEM serve has no --redis-url: this build cannot run a cluster"
fi

for db in "$DB_SINGLE" "$DB_CLUSTER"; do
  psql_admin -c "CREATE DATABASE $db" >/dev/null
  DBS+=("$db")
done
pg_url() { echo "postgres://$PG_USER@$PG_HOST:$PG_PORT/$1"; }

# start NAME ARGS...: starts a server on an ephemeral port and waits until /readyz
# answers (it prints its address before it opens the store and, on a fresh database,
# creates the first account); sets PID and ADDR (host:port).
start() {
  local name=$1
  shift
  mkdir -p "$DATA/$name"
  "$TANDEM" serve --listen 127.0.0.1:0 --data-dir "$DATA/$name" --allow-anonymous "$@" \
    >"$OUT/$name.out" 2>"$OUT/$name.log" &
  PID=$!
  PIDS+=("$PID")
  ADDR=
  local ready=
  for _ in $(seq 300); do
    alive "$PID" || break
    [[ -n $ADDR ]] || ADDR=$(sed -n 's|^listening on http://||p' "$OUT/$name.out" 2>/dev/null | head -n1)
    if [[ -n $ADDR ]] && curl -sf -o /dev/null --max-time 2 "http://$ADDR/readyz"; then
      ready=1
      break
    fi
    sleep 0.1
  done
  [[ -n $ready ]] || die "$name did not become ready within 30 s: $(tail -n5 "$OUT/$name.log")"
}

log "starting the single node (Postgres $DB_SINGLE)"
start single --database-url "$(pg_url "$DB_SINGLE")"
SINGLE_URL=ws://$ADDR/v1/connect SINGLE_PID=$PID
CLUSTER_URLS=() CLUSTER_PIDS=()
# One after the other, so the first node creates the schema alone.
for n in $(seq "$NODES"); do
  log "starting cluster node $n (Postgres $DB_CLUSTER, Redis prefix $PREFIX)"
  start "node$n" --database-url "$(pg_url "$DB_CLUSTER")" "${CLUSTER_ARGS[@]}"
  CLUSTER_URLS+=("ws://$ADDR/v1/connect")
  CLUSTER_PIDS+=("$PID")
done
CLUSTER_URL=$(IFS=,; echo "${CLUSTER_URLS[*]}")
CLUSTER_PID=$(IFS=,; echo "${CLUSTER_PIDS[*]}")

# cpu_ticks: "busy total" jiffies of the whole machine, from /proc/stat.
cpu_ticks() {
  local _ user nice system idle iowait irq softirq steal
  read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# wait_quiet: before a run, wait (QUIET_TIMEOUT s at most, default 300) until the
# machine's CPU use over 2 s is below QUIET_PCT % of one core (default 30): other work on
# these cores (a build, a test suite) skews latency far more than clustering does.
wait_quiet() {
  local deadline=$((SECONDS + ${QUIET_TIMEOUT:-300})) a b busy ab at bb bt
  while :; do
    a=$(cpu_ticks); sleep 2; b=$(cpu_ticks)
    read -r ab at bb bt <<<"$a $b"
    busy=$(( (bb - ab) * 100 * $(nproc) / ((bt - at) > 0 ? (bt - at) : 1) ))
    (( busy < ${QUIET_PCT:-30} )) && return 0
    if (( SECONDS >= deadline )); then
      log "WARNING: the machine is still busy ($busy % of a core) before this run; going on"
      return 0
    fi
    log "the machine is busy ($busy % of a core); waiting"
    sleep 8
  done
}

for round in $(seq "$ROUNDS"); do
  if (( round % 2 )); then order=(single cluster); else order=(cluster single); fi
  for mode in "${order[@]}"; do
    if [[ $mode == single ]]; then url=$SINGLE_URL pid=$SINGLE_PID; else url=$CLUSTER_URL pid=$CLUSTER_PID; fi
    wait_quiet
    log "round $round, $mode"
    before=$(cpu_ticks)
    "$BENCH" --url "$url" --server-pid "$pid" --rooms "$ROOMS" --clients "$CLIENTS" \
      --writers "$WRITERS" --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" \
      --settle 1s --room-prefix "$mode-$round-$SUFFIX" --json >"$OUT/$mode-$round.json" \
      2>"$OUT/$mode-$round.bench.log" ||
      die "tandem-bench failed ($mode, round $round): $(tail -n3 "$OUT/$mode-$round.bench.log")"
    echo "$before $(cpu_ticks)" >"$OUT/$mode-$round.cpu"
  done
done
for pid in "${PIDS[@]}"; do
  alive "$pid" || log "WARNING: server $pid exited during the run (crash?); logs in $OUT"
done

echo
echo "bench-cluster on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ), tandem $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes')"
echo "$ROOMS rooms x $CLIENTS clients, $WRITERS writers/room at $RATE updates/s, ${DURATION} windows, $ROUNDS rounds${CLUSTER_EXTRA:+; cluster nodes with $CLUSTER_EXTRA}; results in $OUT"
node - "$OUT" "$ROUNDS" "$(nproc)" <<'JS'
const fs = require('fs')
const [dir, rounds, cores] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]
// Whole-machine CPU over the bench run (connect, warm-up and window), % of one core.
const machine = (mode, r) => {
  const [b0, t0, b1, t1] = fs.readFileSync(`${dir}/${mode}-${r}.cpu`, 'utf8').trim().split(/\s+/).map(Number)
  return (b1 - b0) / Math.max(1, t1 - t0) * cores * 100
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const modes = ['single', 'cluster']
const rows = { single: [], cluster: [] }
const f2 = (x) => x.toFixed(2)
for (let r = 1; r <= rounds; r++) for (const mode of modes) {
  const rep = JSON.parse(fs.readFileSync(`${dir}/${mode}-${r}.json`))
  const s = rep.steps[0]
  s.machine_cpu_pct = machine(mode, r)
  rows[mode].push(s)
  let line = `round ${r} ${mode.padEnd(7)}: ${s.delivered_per_sec.toFixed(0)} delivered/s, p50 ${f2(s.latency_ms.p50)} ms, p99 ${f2(s.latency_ms.p99)} ms, max ${f2(s.latency_ms.max)} ms, delivery ${f2(s.delivery_pct)} %, cpu: servers ${(s.server_cpu_pct ?? 0).toFixed(0)} %, bench ${s.bench_cpu_pct.toFixed(0)} %, machine ${s.machine_cpu_pct.toFixed(0)} %`
  if (rep.connect.failed) line += `, ${rep.connect.failed} connections FAILED`
  if (rep.disconnects) line += `, ${rep.disconnects} DISCONNECTS`
  if (s.duplicates) line += `, ${s.duplicates} duplicates`
  if (s.reordered) line += `, ${s.reordered} reordered`
  const x = s.cross_node
  if (x) line += `\n                  cross-node ${x.share_pct.toFixed(1)} % of deliveries (loss ${f2(x.loss_pct)} %), p50/p99 cross ${f2(x.latency_ms.p50)}/${f2(x.latency_ms.p99)} ms, same-node ${f2(x.same_node_latency_ms.p50)}/${f2(x.same_node_latency_ms.p99)} ms`
  console.log(line)
}
const m = (mode, f) => median(rows[mode].map(f))
const metrics = [
  ['p50 latency, ms', s => s.latency_ms.p50, 2],
  ['p99 latency, ms', s => s.latency_ms.p99, 2],
  ['max latency, ms', s => s.latency_ms.max, 1],
  ['delivered/s', s => s.delivered_per_sec, 0],
  ['delivery, %', s => s.delivery_pct, 2],
  ['server CPU, % of a core (sum)', s => s.server_cpu_pct ?? 0, 0],
  ['bench CPU, % of a core', s => s.bench_cpu_pct, 0],
  [`machine CPU, % of a core (${cores * 100} = all)`, s => s.machine_cpu_pct, 0],
]
const w = 38
console.log(`\nmedians of ${rounds} round(s)${' '.repeat(w - 15)}single   3 nodes   3-node/single`)
for (const [name, f, d] of metrics) {
  const a = m('single', f), b = m('cluster', f)
  console.log(`  ${name.padEnd(w)}${a.toFixed(d).padStart(8)}${b.toFixed(d).padStart(10)}${(a ? (b / a).toFixed(2) : '-').padStart(16)}`)
}
const xs = rows.cluster.map(s => s.cross_node).filter(Boolean)
if (xs.length) {
  const mx = (f) => median(xs.map(f))
  console.log(`  3 nodes only: ${mx(x => x.share_pct).toFixed(1)} % of deliveries crossed nodes; p50/p99 cross-node ${f2(mx(x => x.latency_ms.p50))}/${f2(mx(x => x.latency_ms.p99))} ms, same-node ${f2(mx(x => x.same_node_latency_ms.p50))}/${f2(mx(x => x.same_node_latency_ms.p99))} ms`)
}
JS
