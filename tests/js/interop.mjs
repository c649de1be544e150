#!/usr/bin/env node
// Interop scenario with stock Yjs clients (yjs + y-websocket provider + ws).
//
//   node tests/js/interop.mjs <wsBase> <room> [--token T] [--seed N] [--ops N] [--timeout-ms MS]
//
// wsBase is e.g. ws://127.0.0.1:PORT/v1/connect; the provider connects to <wsBase>/<room>.
// Progress goes to stderr; exactly one JSON summary line goes to stdout.
// Exit 0 on success, 1 on a failed check or timeout, 2 on bad usage.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const USAGE = 'usage: node interop.mjs <wsBase> <room> [--token T] [--seed N] [--ops N] [--timeout-ms MS]'

// ---------------------------------------------------------------- arguments
const positional = []
const opts = { token: null, seed: null, ops: 150, timeoutMs: 45000 }
{
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) usage(`missing value for ${a}`)
      return argv[++i]
    }
    if (a === '--token') opts.token = next()
    else if (a === '--seed') opts.seed = Number(next())
    else if (a === '--ops') opts.ops = Number(next())
    else if (a === '--timeout-ms') opts.timeoutMs = Number(next())
    else if (a.startsWith('--')) usage(`unknown option ${a}`)
    else positional.push(a)
  }
  if (positional.length !== 2) usage('expected <wsBase> <room>')
  if (!Number.isInteger(opts.ops) || opts.ops < 1) usage('--ops must be a positive integer')
  if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) usage('--timeout-ms must be positive')
  if (opts.seed === null) opts.seed = (Date.now() ^ (process.pid << 8)) >>> 0
  if (!Number.isInteger(opts.seed)) usage('--seed must be an integer')
}
const [wsBase, room] = positional

function usage (msg) {
  process.stderr.write(`interop: ${msg}\n${USAGE}\n`)
  process.exit(2)
}

// ---------------------------------------------------------------- helpers
const t0 = Date.now()
const log = (msg) => process.stderr.write(`[interop +${Date.now() - t0}ms] ${msg}\n`)

class CheckFailed extends Error {}
const fail = (msg) => { throw new CheckFailed(msg) }

/** Deterministic PRNG (mulberry32) so a failing run can be replayed with --seed. */
function rng (seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6D2B79F5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rand = rng(opts.seed)
const randInt = (n) => Math.floor(rand() * n) // 0..n-1

/** Poll `cond` every `everyMs` until it returns truthy or `timeoutMs` passes. */
async function waitFor (label, cond, timeoutMs, everyMs = 10) {
  const start = Date.now()
  for (;;) {
    const v = cond()
    if (v) return { value: v, ms: Date.now() - start }
    if (Date.now() - start >= timeoutMs) fail(`timed out after ${timeoutMs} ms waiting for ${label}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

/** JSON with sorted object keys: Y.Map key order may legitimately differ between replicas. */
function canon (v) {
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']'
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}'
  }
  return JSON.stringify(v)
}

const svB64 = (doc) => Buffer.from(Y.encodeStateVector(doc)).toString('base64')
const sameSV = (a, b) => Buffer.from(Y.encodeStateVector(a.doc)).equals(Buffer.from(Y.encodeStateVector(b.doc)))
const snapshot = (c) => ({ text: c.text.toString(), map: canon(c.map.toJSON()) })
const sameContent = (a, b) => {
  const x = snapshot(a)
  const y = snapshot(b)
  return x.text === y.text && x.map === y.map
}

const clients = []
const closeEvents = []

function makeClient (name) {
  const doc = new Y.Doc()
  const params = opts.token !== null ? { token: opts.token } : {}
  const provider = new WebsocketProvider(wsBase, room, doc, {
    WebSocketPolyfill: WebSocket,
    // All three clients live in one process: lib0's BroadcastChannel would deliver
    // updates between them in-process and bypass the server entirely.
    disableBc: true,
    params
  })
  const c = {
    name,
    doc,
    provider,
    text: doc.getText('text'),
    map: doc.getMap('map'),
    awareness: provider.awareness,
    destroyed: false
  }
  provider.on('connection-close', (ev) => {
    if (ev) {
      closeEvents.push({ client: name, code: ev.code, reason: String(ev.reason ?? '') })
      log(`${name}: connection-close code=${ev.code} reason=${JSON.stringify(String(ev.reason ?? ''))}`)
    }
  })
  provider.on('connection-error', (ev) => {
    log(`${name}: connection-error ${ev && (ev.message || (ev.error && ev.error.message)) || ''}`)
  })
  provider.on('closed', (ev) => {
    log(`${name}: provider gave up (terminal close) code=${ev.code} reason=${JSON.stringify(ev.reason)}`)
  })
  clients.push(c)
  return c
}

function destroyClient (c) {
  if (c.destroyed) return
  c.destroyed = true
  try { c.provider.destroy() } catch (e) { log(`${c.name}: provider.destroy threw ${e}`) }
  try { c.doc.destroy() } catch (e) { log(`${c.name}: doc.destroy threw ${e}`) }
}

function describe (c) {
  return {
    synced: c.provider.synced,
    wsconnected: c.provider.wsconnected,
    textLen: c.text.length,
    mapSize: c.map.size,
    sv: svB64(c.doc)
  }
}

// ---------------------------------------------------------------- random edits
const LOWER = 'abcdefghijklmnopqrstuvwxyz'
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
const SHARED_KEYS = ['s0', 's1', 's2', 's3', 's4']

/**
 * One random operation. A only ever inserts lowercase letters, B uppercase, so the
 * converged text must contain both alphabets. Distinct keys `<name>-k<i>` are only
 * written by their owner, so their converged value is the owner's last write.
 */
function randomOp (c, alphabet, ownKeys, stats) {
  const r = rand()
  if (r < 0.5) {
    const len = c.text.length
    const pos = [0, len, randInt(len + 1)][randInt(3)]
    let s = ''
    const n = 1 + randInt(8)
    for (let i = 0; i < n; i++) s += alphabet[randInt(alphabet.length)]
    c.text.insert(pos, s)
    stats.textInserts++
  } else if (r < 0.58) {
    const len = c.text.length
    if (len > 4) {
      const pos = randInt(len - 1)
      const n = 1 + randInt(Math.min(3, len - pos))
      c.text.delete(pos, n)
      stats.textDeletes++
    }
  } else if (r < 0.78) {
    const key = SHARED_KEYS[randInt(SHARED_KEYS.length)]
    const value = randomValue(c.name)
    c.map.set(key, value)
    stats.mapSets++
  } else if (r < 0.95) {
    const key = `${c.name}-k${randInt(12)}`
    const value = randomValue(c.name)
    c.map.set(key, value)
    ownKeys.set(key, value)
    stats.mapSets++
  } else {
    // delete a shared key or one of our own keys
    if (rand() < 0.5) {
      c.map.delete(SHARED_KEYS[randInt(SHARED_KEYS.length)])
    } else {
      const key = `${c.name}-k${randInt(12)}`
      c.map.delete(key)
      ownKeys.set(key, undefined)
    }
    stats.mapDeletes++
  }
}

function randomValue (name) {
  switch (randInt(5)) {
    case 0: return randInt(1_000_000)
    case 1: return `${name}-${randInt(1000)}`
    case 2: return { by: name, n: randInt(100), nested: { ok: rand() < 0.5 } }
    case 3: return [name, randInt(10), null, true]
    default: return rand() < 0.5
  }
}

// ---------------------------------------------------------------- scenario
const summary = {
  ok: false,
  wsBase,
  room,
  seed: opts.seed,
  ops_per_client: opts.ops
}

async function scenario () {
  log(`seed=${opts.seed} url=${wsBase}/${room}`)

  // 1. A and B connect and sync.
  const A = makeClient('A')
  const B = makeClient('B')
  const syncAB = await waitFor('A and B to sync', () => A.provider.synced && B.provider.synced, 10000)
  summary.ab_sync_ms = syncAB.ms
  log(`A and B synced in ${syncAB.ms} ms`)

  // 2. Concurrent edits. Each round applies a burst of ops on A and on B in the same
  //    event-loop turn (neither sees the other's burst before making its own), then
  //    yields so the network can deliver some, but not necessarily all, of it.
  const statsA = { textInserts: 0, textDeletes: 0, mapSets: 0, mapDeletes: 0 }
  const statsB = { textInserts: 0, textDeletes: 0, mapSets: 0, mapDeletes: 0 }
  const ownA = new Map()
  const ownB = new Map()
  let doneA = 0
  let doneB = 0
  let rounds = 0
  while (doneA < opts.ops || doneB < opts.ops) {
    const burst = 1 + randInt(6)
    const inTxn = rand() < 0.25
    const runA = () => { for (let i = 0; i < burst && doneA < opts.ops; i++, doneA++) randomOp(A, LOWER, ownA, statsA) }
    const runB = () => { for (let i = 0; i < burst && doneB < opts.ops; i++, doneB++) randomOp(B, UPPER, ownB, statsB) }
    if (inTxn) { A.doc.transact(runA); B.doc.transact(runB) } else { runA(); runB() }
    rounds++
    if (rand() < 0.5) await tick()
    else await new Promise((resolve) => setTimeout(resolve, randInt(3)))
  }
  // one larger insert each, at opposite ends
  A.text.insert(0, 'a'.repeat(2000))
  B.text.insert(B.text.length, 'Z'.repeat(2000))
  statsA.textInserts++
  statsB.textInserts++
  summary.edits = { rounds, A: statsA, B: statsB }
  log(`edits done: ${rounds} rounds, A=${JSON.stringify(statsA)} B=${JSON.stringify(statsB)}`)

  // 3. Converge.
  const conv = await waitFor('A and B to converge (equal state vectors, text and map)',
    () => sameSV(A, B) && sameContent(A, B), 15000)
  summary.converge_ms = conv.ms
  const final = snapshot(A)
  summary.text_length = A.text.length
  summary.map_size = A.map.size
  summary.state_vector = svB64(A.doc)
  log(`A and B converged in ${conv.ms} ms: text ${A.text.length} chars, map ${A.map.size} keys`)

  // Content checks beyond mere equality.
  if (!/[a-z]/.test(final.text) || !/[A-Z]/.test(final.text)) {
    fail('converged text does not contain edits from both A and B')
  }
  if (!final.text.includes('a'.repeat(2000)) || !final.text.includes('Z'.repeat(2000))) {
    fail('converged text lost one of the 2000-char inserts')
  }
  for (const [owner, own] of [[A, ownA], [B, ownB]]) {
    for (const [key, value] of own) {
      const got = A.map.get(key)
      if (canon(got) !== canon(value)) {
        fail(`map key ${key} (written only by ${owner.name}) is ${canon(got)}, expected ${canon(value)}`)
      }
    }
  }
  const clientIds = new Set()
  for (const item of Y.decodeStateVector(Y.encodeStateVector(A.doc)).keys()) clientIds.add(item)
  if (!clientIds.has(A.doc.clientID) || !clientIds.has(B.doc.clientID)) {
    fail('state vector does not contain both A and B')
  }

  // 4. Late joiner C receives the full state.
  const C = makeClient('C')
  const syncC = await waitFor('C to sync', () => C.provider.synced, 10000)
  summary.c_sync_ms = syncC.ms
  summary.c_equal_at_synced = sameSV(A, C) && sameContent(A, C)
  const convC = await waitFor('C to hold the same content as A', () => sameSV(A, C) && sameContent(A, C), 5000)
  summary.c_converge_ms = syncC.ms + convC.ms
  log(`C synced in ${syncC.ms} ms (equal at synced: ${summary.c_equal_at_synced})`)

  // C's own edit reaches A and B.
  C.text.insert(0, '<C>')
  C.map.set('from-C', { hello: 'world' })
  await waitFor('A and B to see C\'s edit', () =>
    A.text.toString().startsWith('<C>') && B.text.toString().startsWith('<C>') &&
    canon(A.map.get('from-C')) === canon({ hello: 'world' }) &&
    canon(B.map.get('from-C')) === canon({ hello: 'world' }), 5000)
  await waitFor('A, B and C to converge after C\'s edit',
    () => sameSV(A, B) && sameSV(A, C) && sameContent(A, B) && sameContent(A, C), 5000)
  log('C\'s edit reached A and B')

  // 5. Awareness.
  A.awareness.setLocalState({ user: { name: 'A' } })
  B.awareness.setLocalState({ user: { name: 'B' } })
  C.awareness.setLocalState({ user: { name: 'C' } })
  const nameOf = (obs, who) => {
    const s = obs.awareness.getStates().get(who.doc.clientID)
    return s && s.user ? s.user.name : undefined
  }
  const aw = await waitFor('A, B and C to see each other\'s awareness state', () =>
    nameOf(A, B) === 'B' && nameOf(B, A) === 'A' &&
    nameOf(A, C) === 'C' && nameOf(B, C) === 'C' && nameOf(C, A) === 'A' && nameOf(C, B) === 'B', 10000)
  summary.awareness_visible_ms = aw.ms
  log(`awareness states exchanged in ${aw.ms} ms`)

  // 5a. Graceful leave: A.destroy() sends a null awareness state for itself, then closes.
  const aId = A.doc.clientID
  let removedAt = null
  const onBChange = ({ removed }) => {
    if (removedAt === null && removed.includes(aId)) removedAt = Date.now()
  }
  B.awareness.on('change', onBChange)
  const leaveStart = Date.now()
  destroyClient(A)
  await waitFor('B to see A\'s awareness state removed after A.destroy()',
    () => !B.awareness.getStates().has(aId), 10000)
  B.awareness.off('change', onBChange)
  summary.awareness_removed_after_destroy_ms = (removedAt ?? Date.now()) - leaveStart
  log(`B saw A's awareness removed ${summary.awareness_removed_after_destroy_ms} ms after A.destroy()`)

  // 5b. Abrupt drop: C's socket is torn down without a close frame or a null awareness
  //     update, so only the server can tell B that C is gone.
  const cId = C.doc.clientID
  C.provider.shouldConnect = false // the provider must not reconnect
  const dropStart = Date.now()
  if (C.provider.ws && typeof C.provider.ws.terminate === 'function') C.provider.ws.terminate()
  else fail('C has no open ws socket to terminate')
  const drop = await waitFor('B to see C\'s awareness removed after C\'s socket was dropped',
    () => !B.awareness.getStates().has(cId), 10000)
  summary.awareness_removed_after_drop_ms = Date.now() - dropStart
  log(`B saw C's awareness removed ${drop.ms} ms after C's socket was dropped`)
  destroyClient(C)

  // B is still connected and still has everything.
  if (!B.provider.wsconnected) fail('B lost its connection during the scenario')
  if (B.text.toString() !== A.text.toString()) fail('B text diverged at the end')

  summary.close_events = closeEvents
  summary.ok = true
}

// ---------------------------------------------------------------- main
let finished = false
function finish (code, error) {
  if (finished) return
  finished = true
  clearTimeout(hardTimer)
  if (error) {
    summary.ok = false
    summary.error = error
    summary.clients = Object.fromEntries(clients.map((c) => [c.name, c.destroyed ? 'destroyed' : describe(c)]))
    summary.close_events = closeEvents
    log(`FAILED: ${error}`)
  }
  summary.elapsed_ms = Date.now() - t0
  for (const c of clients) destroyClient(c)
  process.stdout.write(JSON.stringify(summary) + '\n')
  process.exit(code)
}

const hardTimer = setTimeout(() => finish(1, `hard timeout: scenario did not finish within ${opts.timeoutMs} ms`), opts.timeoutMs)

scenario().then(
  () => { log('OK'); finish(0) },
  (e) => finish(1, e instanceof CheckFailed ? e.message : `unexpected error: ${e && e.stack ? e.stack : e}`)
)
