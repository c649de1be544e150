// Side-by-side summary of scripts/bench-compare.sh results.
// Usage: node summarize.mjs RESULTS_DIR SERVER...   (reads RESULTS_DIR/{server}-{scenario}.json)
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

const [dir, ...servers] = process.argv.slice(2)
const load = (server, scenario) => {
  const file = join(dir, `${server}-${scenario}.json`)
  if (!existsSync(file)) return null
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    return null
  }
}

const kib = b => (b == null ? 'n/a' : Math.abs(b) >= 1024 * 1024 ? `${(b / 1048576).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`)
const num = (v, d = 0) => (v == null || Number.isNaN(v) ? 'n/a' : Number(v).toFixed(d))
const ms = v => (v == null ? 'n/a' : Number(v).toFixed(2))

const rows = []
const section = title => rows.push([title])
const row = (label, f) => rows.push([`  ${label}`, ...servers.map(s => {
  try { return f(s) } catch { return 'n/a' }
})])

const lat = Object.fromEntries(servers.map(s => [s, load(s, 'latency')]))
const ramp = Object.fromEntries(servers.map(s => [s, load(s, 'ramp')]))
const idle = Object.fromEntries(servers.map(s => [s, load(s, 'idle')]))

const anyLat = Object.values(lat).find(Boolean)
section(anyLat
  ? `latency: ${anyLat.rooms} rooms, ${anyLat.connections} clients, ${anyLat.steps[0]?.rate_per_writer ?? '?'} updates/s per writer`
  : 'latency')
row('connected', s => `${lat[s].connect.connected}/${lat[s].connections}`)
row('sent/s', s => num(lat[s].steps[0].sent_per_sec, 1))
row('delivered/s', s => num(lat[s].steps[0].delivered_per_sec, 1))
row('loss %', s => num(lat[s].steps[0].loss_pct, 2))
row('p50 / p99 / max ms', s => {
  const l = lat[s].steps[0].latency_ms
  return `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}`
})
row('server CPU % (1 core)', s => num(lat[s].steps[0].server_cpu_pct))
row('bench CPU % (1 core)', s => num(lat[s].steps[0].bench_cpu_pct))
row('server RSS idle / after', s => `${kib(lat[s].rss.idle_bytes)} / ${kib(lat[s].rss.after_load_bytes)}`)

const anyRamp = Object.values(ramp).find(Boolean)
section(anyRamp
  ? `throughput ramp: ${anyRamp.rooms} rooms, ${anyRamp.connections} clients (pass: delivery >= 99%, p99 under the bound)`
  : 'throughput ramp')
row('steps run', s => ramp[s].steps.map(x => `${num(x.rate_per_writer)}${x.passed ? '' : '✗'}`).join(' '))
row('max rate per writer', s => (ramp[s].max_passing ? num(ramp[s].max_passing.rate_per_writer) : 'none'))
row('max sent/s', s => (ramp[s].max_passing ? num(ramp[s].max_passing.sent_per_sec) : 'none'))
row('max delivered/s', s => (ramp[s].max_passing ? num(ramp[s].max_passing.delivered_per_sec) : 'none'))
row('p99 ms at max', s => (ramp[s].max_passing ? ms(ramp[s].max_passing.latency_ms.p99) : 'n/a'))
row('server CPU % at max', s => (ramp[s].max_passing ? num(ramp[s].max_passing.server_cpu_pct) : 'n/a'))
row('stopped because', s => ramp[s].ramp_stop ?? 'reached the last step')

const anyIdle = Object.values(idle).find(Boolean)
section(anyIdle ? `idle: ${anyIdle.connections} connections over ${anyIdle.rooms} rooms` : 'idle')
row('connected', s => `${idle[s].connect.connected}/${idle[s].connections}`)
row('connect time s', s => num(idle[s].connect.seconds, 2))
row('handshake p50 / p99 ms', s => `${ms(idle[s].connect.handshake_ms_p50)} / ${ms(idle[s].connect.handshake_ms_p99)}`)
row('server RSS before', s => kib(idle[s].rss.before_bytes))
row('server RSS idle', s => kib(idle[s].rss.idle_bytes))
row('RSS per connection', s => kib(idle[s].rss.per_connection_bytes))

const problems = []
for (const s of servers) {
  for (const [name, r] of [['latency', lat[s]], ['ramp', ramp[s]], ['idle', idle[s]]]) {
    if (!r) { problems.push(`${s} ${name}: no result`); continue }
    if (r.connect.failed) problems.push(`${s} ${name}: ${r.connect.failed} connections failed: ${r.connect.errors.join('; ')}`)
    for (const k of ['disconnects', 'decode_errors', 'auth_denied', 'send_errors']) {
      if (r[k]) problems.push(`${s} ${name}: ${r[k]} ${k}`)
    }
  }
}

const header = ['', ...servers]
const width = rows.filter(r => r.length > 1).concat([header]).reduce((w, r) => r.map((c, i) => Math.max(w[i] ?? 0, String(c).length)), [])
const line = r => r.map((c, i) => String(c).padEnd(r.length === 1 ? 0 : width[i])).join('   ').trimEnd()
console.log(line(header))
for (const r of rows) console.log(line(r))
if (problems.length) {
  console.log('\nproblems:')
  for (const p of problems) console.log(`  ${p}`)
}
