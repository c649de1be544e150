#!/usr/bin/env node
// A hostile presence campaign for measuring what it costs the server (not a test):
//
//   node tests/js/hostile.mjs <wsBase> <room> [--cases N] [--parallel P]
//
// Opens N sockets (P at a time) to <wsBase>/<room>; each sends one hostile awareness
// message (deep arrays, objects or mixed nesting from 1k to 1M levels, an oversized
// state, malformed JSON) and waits for the server to close it. Prints one JSON line:
// {"cases":N,"closes":{"<code>":count,...},"ms":elapsed}.

import WebSocket from 'ws'

const args = process.argv.slice(2)
const positional = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')))
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : dflt
}
const [wsBase, room] = positional
const cases = opt('--cases', 300)
const parallel = opt('--parallel', 10)

const varUint = (n) => {
  const out = []
  while (n >= 0x80) { out.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80) }
  out.push(n)
  return out
}
const nested = (depth, open, close) => open.repeat(depth) + '1' + close.repeat(depth)
const states = []
for (const depth of [1_000, 10_000, 100_000, 1_000_000]) {
  states.push(nested(depth, '[', ']'))
  states.push(nested(Math.min(depth, 300_000), '{"a":', '}'))
  states.push(nested(Math.min(depth, 300_000), '[{"a":', '}]'))
}
states.push(`{"x":"${'x'.repeat(1_000_000)}"}`, '{"a":', '{} {}')

const frame = (i) => {
  const state = Buffer.from(states[i % states.length])
  const update = Buffer.concat([
    Buffer.from([...varUint(1), ...varUint(777 + i), ...varUint(1), ...varUint(state.length)]),
    state
  ])
  return Buffer.concat([Buffer.from([1, ...varUint(update.length)]), update])
}

const closes = {}
const one = (i) => new Promise((resolve) => {
  const ws = new WebSocket(`${wsBase}/${room}`)
  const done = (code) => { closes[code] = (closes[code] || 0) + 1; resolve() }
  const timer = setTimeout(() => { ws.terminate(); done('timeout') }, 30_000)
  ws.on('open', () => ws.send(frame(i)))
  ws.on('message', () => {})
  ws.on('close', (code) => { clearTimeout(timer); done(code) })
  ws.on('error', () => {})
})

const start = Date.now()
let next = 0
await Promise.all(Array.from({ length: parallel }, async () => {
  while (next < cases) await one(next++)
}))
process.stdout.write(JSON.stringify({ cases, closes, ms: Date.now() - start }) + '\n')
