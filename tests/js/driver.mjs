#!/usr/bin/env node
// A stock y-websocket client (yjs + y-websocket provider + ws) scripted over stdin/stdout.
//
//   node tests/js/driver.mjs <wsBase> <room> [--token T] [--no-connect] [--max-backoff-ms MS]
//
// The provider connects to <wsBase>/<room>[?token=T]. One JSON command per stdin line;
// every reply and every event is one JSON line on stdout. Diagnostics go to stderr.
//
// Replies:  {"id":<echoed>,"ok":true,...}  or  {"id":<echoed>,"ok":false,"error":"..."}
// Events:   {"event":"ready"|"status"|"connection-close"|"connection-error"|"closed"|"synced"|
//           "exception"|"console-error",...} (events have no "id"; replies have no "event")
//
// An exception nothing caught (say, thrown inside the provider's message handler) or an
// unhandled rejection is reported as {"event":"exception","error":...} and counted, and
// so is every console.error (Yjs and y-websocket log errors they catch there); the
// client keeps running, and `get` reports both counts, so a test can assert that
// nothing the server sent made the stock client fail.
//
// Commands are handled as they arrive: non-waiting commands reply before the next line is
// read, wait_* commands reply when their condition holds or their timeout_ms (default
// 10000) passes, so several waits may be pending at once. A timed-out wait replies
// {"ok":false,"error":"timeout",...} with the current state. The process exits when stdin
// closes or after {"cmd":"quit"}.
//
// Commands:
//   {"cmd":"wait_synced","timeout_ms":n}
//   {"cmd":"text_insert","index":n,"text":"..."}      {"cmd":"text_delete","index":n,"len":n}
//   {"cmd":"map_set","key":"k","value":<json>}         {"cmd":"map_delete","key":"k"}
//   {"cmd":"get"}  -> {"text","map","sv"(base64 state vector),"synced","status","client_id",
//                      "exceptions","console_errors"}
//   {"cmd":"state"} -> {"update": base64 Y.encodeStateAsUpdate(doc)}
//   {"cmd":"wait_text","equals":"...","timeout_ms":n}
//   {"cmd":"wait_map_size","size":n,"timeout_ms":n}
//   {"cmd":"set_awareness","state":<json or null>}
//   {"cmd":"awareness"} -> {"states":{"<clientID>":<state>,...},"count":n,"client_id":self}
//   {"cmd":"wait_awareness_count","count":n,"timeout_ms":n}  (OTHER clients with a state, exact)
//   {"cmd":"wait_status","status":"connected"|"disconnected"|"connecting","timeout_ms":n}
//   {"cmd":"disconnect"}  {"cmd":"connect"}  {"cmd":"quit"}

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const USAGE = 'usage: node driver.mjs <wsBase> <room> [--token T] [--no-connect] [--max-backoff-ms MS]'

const positional = []
let token = null
let connect = true
let maxBackoffTime = 2500
{
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) usage(`missing value for ${a}`)
      return argv[++i]
    }
    if (a === '--token') token = next()
    else if (a === '--no-connect') connect = false
    else if (a === '--max-backoff-ms') maxBackoffTime = Number(next())
    else if (a.startsWith('--')) usage(`unknown option ${a}`)
    else positional.push(a)
  }
  if (positional.length !== 2) usage('expected <wsBase> <room>')
}
const [wsBase, room] = positional

function usage (msg) {
  process.stderr.write(`driver: ${msg}\n${USAGE}\n`)
  process.exit(2)
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
// The controlling test went away (stdout closed): nothing left to report to.
process.stdout.on('error', () => process.exit(0))
const log = (msg) => process.stderr.write(`[driver ${room}] ${msg}\n`)

// ---------------------------------------------------------------- failures
let exceptions = 0
let consoleErrors = 0
const short = (e) => String(e && e.stack ? e.stack : e).slice(0, 500)
const originalConsoleError = console.error
console.error = (...args) => {
  consoleErrors++
  try { out({ event: 'console-error', error: args.map(short).join(' ').slice(0, 500) }) } catch (_) {}
  originalConsoleError(...args)
}

// ---------------------------------------------------------------- client
const doc = new Y.Doc()
const text = doc.getText('text')
const map = doc.getMap('map')
let status = connect ? 'connecting' : 'disconnected'

const provider = new WebsocketProvider(wsBase, room, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  connect,
  maxBackoffTime,
  params: token !== null ? { token } : {}
})
const awareness = provider.awareness

provider.on('status', ({ status: s }) => {
  status = s
  out({ event: 'status', status: s })
})
provider.on('connection-close', (ev) => {
  // ev is the CloseEvent from the socket, or null when the provider closed it itself
  // (disconnect()/destroy() or the 30 s "no message received" watchdog).
  if (ev) out({ event: 'connection-close', code: ev.code, reason: String(ev.reason ?? ''), was_clean: !!ev.wasClean, local: false })
  else out({ event: 'connection-close', code: null, reason: null, was_clean: null, local: true })
})
provider.on('connection-error', (ev) => {
  const message = ev && (ev.message || (ev.error && ev.error.message)) ? (ev.message || ev.error.message) : String(ev && ev.type)
  out({ event: 'connection-error', message })
})
// y-websocket >= 3.1: the server closed with a code that shouldReconnect() rejects
// (4400-4499 by default); the provider stops reconnecting.
provider.on('closed', (ev) => out({ event: 'closed', code: ev.code, reason: String(ev.reason ?? '') }))
provider.on('sync', (isSynced) => out({ event: 'synced', synced: isSynced }))

// ---------------------------------------------------------------- state helpers
const svB64 = () => Buffer.from(Y.encodeStateVector(doc)).toString('base64')

function otherStates () {
  const states = {}
  for (const [id, st] of awareness.getStates()) {
    if (id !== doc.clientID && st != null) states[String(id)] = st
  }
  return states
}

const current = () => ({
  text: text.toString(),
  map: map.toJSON(),
  sv: svB64(),
  synced: provider.synced,
  status,
  client_id: doc.clientID,
  exceptions,
  console_errors: consoleErrors
})

// ---------------------------------------------------------------- waits
const pending = new Set()

function wait (id, cond, timeoutMs, extra) {
  const ms = timeoutMs === undefined ? 10000 : Number(timeoutMs)
  if (!Number.isFinite(ms) || ms < 0) return out({ id, ok: false, error: 'bad timeout_ms' })
  const start = Date.now()
  if (cond()) return out({ id, ok: true, waited_ms: 0 })
  const w = { id }
  const check = () => {
    if (cond()) {
      done()
      out({ id, ok: true, waited_ms: Date.now() - start })
    } else if (Date.now() - start >= ms) {
      done()
      out({ id, ok: false, error: 'timeout', waited_ms: Date.now() - start, ...extra() })
    }
  }
  const done = () => { clearInterval(w.timer); pending.delete(w) }
  w.timer = setInterval(check, 10)
  pending.add(w)
}

// ---------------------------------------------------------------- commands
function handle (line) {
  if (line.trim() === '') return
  let msg
  try {
    msg = JSON.parse(line)
  } catch (e) {
    return out({ id: null, ok: false, error: `bad json: ${e.message}` })
  }
  if (msg === null || typeof msg !== 'object') return out({ id: null, ok: false, error: 'command must be an object' })
  const id = msg.id ?? null
  try {
    switch (msg.cmd) {
      case 'wait_synced':
        return wait(id, () => provider.synced, msg.timeout_ms, () => ({ synced: provider.synced, status }))
      case 'text_insert':
        if (!Number.isInteger(msg.index) || typeof msg.text !== 'string') throw new Error('text_insert needs integer index and string text')
        if (msg.index < 0 || msg.index > text.length) throw new Error(`index ${msg.index} out of range 0..${text.length}`)
        text.insert(msg.index, msg.text)
        return out({ id, ok: true, length: text.length })
      case 'text_delete':
        if (!Number.isInteger(msg.index) || !Number.isInteger(msg.len)) throw new Error('text_delete needs integer index and len')
        if (msg.index < 0 || msg.len < 0 || msg.index + msg.len > text.length) throw new Error(`range ${msg.index}+${msg.len} out of range 0..${text.length}`)
        text.delete(msg.index, msg.len)
        return out({ id, ok: true, length: text.length })
      case 'map_set':
        if (typeof msg.key !== 'string') throw new Error('map_set needs string key')
        if (msg.value === undefined) throw new Error('map_set needs a value')
        map.set(msg.key, msg.value)
        return out({ id, ok: true, size: map.size })
      case 'map_delete':
        if (typeof msg.key !== 'string') throw new Error('map_delete needs string key')
        map.delete(msg.key)
        return out({ id, ok: true, size: map.size })
      case 'get':
        return out({ id, ok: true, ...current() })
      case 'state':
        return out({ id, ok: true, update: Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64') })
      case 'wait_text':
        if (typeof msg.equals !== 'string') throw new Error('wait_text needs string equals')
        return wait(id, () => text.toString() === msg.equals, msg.timeout_ms, () => ({ text: text.toString(), status }))
      case 'wait_map_size':
        if (!Number.isInteger(msg.size)) throw new Error('wait_map_size needs integer size')
        return wait(id, () => map.size === msg.size, msg.timeout_ms, () => ({ map: map.toJSON(), status }))
      case 'set_awareness':
        if (msg.state === undefined) throw new Error('set_awareness needs a state (object or null)')
        awareness.setLocalState(msg.state)
        return out({ id, ok: true })
      case 'awareness': {
        const states = otherStates()
        return out({ id, ok: true, states, count: Object.keys(states).length, client_id: doc.clientID })
      }
      case 'wait_awareness_count':
        if (!Number.isInteger(msg.count)) throw new Error('wait_awareness_count needs integer count')
        return wait(id, () => Object.keys(otherStates()).length === msg.count, msg.timeout_ms,
          () => ({ states: otherStates(), status }))
      case 'wait_status':
        if (typeof msg.status !== 'string') throw new Error('wait_status needs string status')
        return wait(id, () => status === msg.status, msg.timeout_ms, () => ({ status }))
      case 'disconnect':
        provider.disconnect()
        return out({ id, ok: true })
      case 'connect':
        provider.connect()
        return out({ id, ok: true })
      case 'quit':
        out({ id, ok: true })
        return shutdown(0)
      default:
        return out({ id, ok: false, error: `unknown cmd ${JSON.stringify(msg.cmd)}` })
    }
  } catch (e) {
    return out({ id, ok: false, error: e && e.message ? e.message : String(e) })
  }
}

let shuttingDown = false
function shutdown (code) {
  if (shuttingDown) return
  shuttingDown = true
  for (const w of pending) {
    clearInterval(w.timer)
    out({ id: w.id, ok: false, error: 'driver shutting down' })
  }
  pending.clear()
  try { provider.destroy() } catch (e) { log(`provider.destroy threw ${e}`) }
  try { doc.destroy() } catch (e) { log(`doc.destroy threw ${e}`) }
  // stdout to a pipe or file is synchronous on Linux, so nothing is lost by exiting now;
  // give the close frame a moment to leave the socket first.
  setTimeout(() => process.exit(code), 50)
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', handle)
rl.on('close', () => shutdown(0))

process.on('uncaughtException', (e) => {
  exceptions++
  log(`uncaught exception: ${short(e)}`)
  try { out({ event: 'exception', error: short(e) }) } catch (_) {}
})
process.on('unhandledRejection', (e) => {
  exceptions++
  log(`unhandled rejection: ${short(e)}`)
  try { out({ event: 'exception', error: short(e) }) } catch (_) {}
})

out({ event: 'ready', url: provider.url, client_id: doc.clientID, status })
