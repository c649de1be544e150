// @tandem/client: a room is a real Y.Doc (the app's `yjs`) and a y-protocols Awareness,
// kept in sync with a Tandem server by a provider that follows the Rust SDKs' session
// policy (protocol/src/client; see policy.js and docs/architecture.md "JS SDK"). On top:
// tokens refreshed in band before they expire, the server's "saved" acknowledgements,
// throttled presence, optional IndexedDB persistence, undo of local edits, and the
// Liveblocks-style helpers (presence, others, events, maps/lists/texts).
import * as Y from 'yjs';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import { CLOSE, DEFAULTS, Reconnect, closeAction, retryAfterMs } from './policy.js';
import { TandemError, stringify } from './errors.js';
import { SharedList, SharedMap, SharedText } from './shared.js';

export { TandemError, SharedList, SharedMap, SharedText };

export { closeAction, retryAfterMs, CLOSE };
export { Y };

/** Nothing to load: kept so `await ready` in older code still works. */
export const ready = Promise.resolve();

// Message types (protocol/src/message.rs).
const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const MSG_AUTH = 2;
const MSG_QUERY_AWARENESS = 3;
const MSG_EVENT = 100;
const MSG_SESSION = 101;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;
const SYNC_UPDATE = 2;
const SESSION_HELLO = 0;
const SESSION_REFRESH = 1;
const SESSION_REFRESHED = 2;
const SESSION_SAVED = 3;

const frame = (write) => {
  const e = encoding.createEncoder();
  write(e);
  return encoding.toUint8Array(e);
};
const syncFrame = (sub, bytes) =>
  frame((e) => {
    encoding.writeVarUint(e, MSG_SYNC);
    encoding.writeVarUint(e, sub);
    encoding.writeVarUint8Array(e, bytes);
  });


function wsBase(baseUrl) {
  const url = new URL(baseUrl);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new TandemError(`baseUrl must be http(s) or ws(s): ${baseUrl}`, 'invalid_argument');
  }
  return `${url.origin}${url.pathname.replace(/\/$/, '')}/v1/connect/`;
}

/**
 * A client for one Tandem server. `getToken(room)` returns (a promise of) a room token;
 * `authEndpoint` is a URL that answers `POST {"room": name}` with `{"token": "…"}`.
 * Without either, rooms are entered anonymously. One room object (one socket) per room
 * name: entering again returns the same room and counts a reference (`leave()` leaves
 * when the last one goes), so React's StrictMode double effects share one socket.
 */
export function createClient(options) {
  const { baseUrl, authEndpoint, getToken, fetch: fetchImpl, WebSocket: WebSocketImpl } = options ?? {};
  if (typeof baseUrl !== 'string') throw new TandemError('createClient needs a baseUrl', 'invalid_argument');
  const connectUrl = wsBase(baseUrl);
  let provider = getToken;
  if (!provider && authEndpoint) {
    provider = async (room) => {
      const doFetch = fetchImpl ?? globalThis.fetch;
      const response = await doFetch(authEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ room }),
        credentials: 'include',
      });
      if (!response.ok) throw new TandemError(`auth endpoint answered ${response.status}`, 'token');
      const body = await response.json();
      if (typeof body?.token !== 'string') throw new TandemError('auth endpoint gave no token', 'token');
      return body.token;
    };
  }
  const rooms = new Map();
  const client = {
    enterRoom(name, roomOptions = {}) {
      const existing = rooms.get(name);
      if (existing && !existing._left) {
        existing._refs += 1;
        return existing;
      }
      const room = new Room(connectUrl, name, provider, { WebSocket: WebSocketImpl, ...roomOptions }, () => {
        if (rooms.get(name) === room) rooms.delete(name);
      });
      rooms.set(name, room);
      return room;
    },
    getRoom(name) {
      return rooms.get(name) ?? null;
    },
    getRooms() {
      return [...rooms.values()];
    },
    leaveAll() {
      for (const room of [...rooms.values()]) room.destroy();
    },
  };
  return client;
}

class Emitter {
  constructor() {
    this.listeners = new Map();
  }
  on(kind, cb) {
    let set = this.listeners.get(kind);
    if (!set) this.listeners.set(kind, (set = new Set()));
    const entry = { cb };
    set.add(entry);
    return () => set.delete(entry);
  }
  emit(kind, ...args) {
    const set = this.listeners.get(kind);
    if (!set) return;
    for (const { cb } of [...set]) {
      try {
        cb(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/** A room entered with `client.enterRoom`. */
export class Room {
  constructor(connectUrl, name, getToken, options, onLeave) {
    this.id = name;
    this._url = connectUrl;
    this._getToken = getToken;
    this._options = options;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._onLeave = onLeave;
    this._refs = 1;
    this._left = false;
    this._emitter = new Emitter();
    this._policy = new Reconnect(options.reconnect ?? {});
    this._status = 'initial';
    this._syncStatus = 'synchronized';
    this._self = null; // the server's hello: { connectionId, userId, user, canWrite, canPresence, expiresAt }
    this._othersCache = [];
    this._socket = null;
    this._generation = 0;
    this._timers = new Set();
    this._presenceThrottleMs = options.presenceThrottleMs ?? 100;

    /** The room's document: hand it to any Yjs binding. */
    this.doc = options.doc ?? new Y.Doc();
    /** The room's presence, as y-protocols' Awareness (editor cursors use it). */
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    const initial = options.initialPresence ?? {};
    if (initial === null || typeof initial !== 'object' || Array.isArray(initial)) {
      throw new TandemError('presence must be a JSON object', 'invalid_presence');
    }
    this.awareness.setLocalState({ ...initial });

    // What the server has acknowledged (see "saved" in docs/architecture.md).
    this._conn = null; // per-connection state while a socket is open
    this._unsentLocal = false; // local changes not yet on any socket
    this._lastLocalSeq = 0; // on this connection: the update count carrying our latest change
    this._pending = [];

    this._onDocUpdate = (update, origin) => {
      if (origin === this) return;
      const conn = this._conn;
      if (conn?.forwarding) {
        this._pending.push(update);
        this._scheduleFlush();
      } else {
        this._unsentLocal = true;
      }
      this._updateSyncStatus();
      this._emitter.emit('storage');
    };
    this._onRemoteDocChange = (_update, origin) => {
      if (origin === this) this._emitter.emit('storage');
    };
    this.doc.on('update', this._onDocUpdate);
    this.doc.on('update', this._onRemoteDocChange);

    this._onAwarenessUpdate = ({ added, updated, removed }, origin) => {
      const own = this.doc.clientID;
      if ([...added, ...updated, ...removed].includes(own) && origin !== 'tandem-leave') {
        this._schedulePresence();
      }
    };
    this._onAwarenessChange = ({ added, updated, removed }, origin) => {
      const own = this.doc.clientID;
      const all = [...added, ...updated, ...removed];
      if (all.some((id) => id !== own)) {
        this._othersCache = null;
        this._emitter.emit('others', this.getOthers());
      }
      if (all.includes(own) && origin !== this) this._emitter.emit('my-presence', this.getPresence());
    };
    this.awareness.on('update', this._onAwarenessUpdate);
    this.awareness.on('change', this._onAwarenessChange);

    this._undo = null;
    if (options.persistence) this._persistence = options.persistence(this.doc, name);
    if (options.beforeUnloadGuard && typeof window !== 'undefined') {
      this._beforeUnload = (event) => {
        if (this.hasUnsyncedChanges()) {
          event.preventDefault();
          event.returnValue = '';
        }
      };
      window.addEventListener('beforeunload', this._beforeUnload);
    }
    if (options.autoConnect !== false) this._connectNow(false);
  }

  // ---- public state ----

  /** `initial`, `connecting`, `connected`, `synced`, `reconnecting` or `disconnected`. */
  getStatus() {
    return this._status;
  }

  /**
   * `synchronizing` while local changes are not yet acknowledged as durable by the
   * server (or the room is not synced yet), else `synchronized`.
   */
  getSyncStatus() {
    return this._syncStatus;
  }

  /** Whether local changes exist that the server has not confirmed are on disk. */
  hasUnsyncedChanges() {
    if (this._unsentLocal || this._pending.length > 0) return true;
    const conn = this._conn;
    // Without acknowledgements (a server that sent no hello), sent is all we know.
    if (!conn || !conn.acks) return false;
    return conn.acked < this._lastLocalSeq;
  }

  /** Who the server says this connection is: `{ connectionId, userId, user, canWrite, canPresence }`, or null before the first connection. */
  getSelf() {
    return this._self;
  }

  /** Resolves when the room is synced (rejects on a fatal error or timeout). */
  waitUntilSynced(timeoutMs = 30000) {
    if (this._status === 'synced') return Promise.resolve();
    return this._waitFor('status', () => this._status === 'synced', timeoutMs, 'not synced in time');
  }

  /** Resolves when every local change is acknowledged as durable by the server. */
  waitUntilSaved(timeoutMs = 30000) {
    if (this._syncStatus === 'synchronized' && this._status === 'synced') return Promise.resolve();
    return this._waitFor('sync-status', () => this._syncStatus === 'synchronized' && this._status === 'synced', timeoutMs, 'not saved in time');
  }

  _waitFor(kind, done, timeoutMs, message) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new TandemError(message, 'timeout')), timeoutMs);
      const offA = this.subscribe(kind, () => done() && finish());
      const offB = this.subscribe('status', () => done() && finish());
      const offError = this.subscribe('error', (e) => isFatal(e) && finish(e));
      const finish = (error) => {
        clearTimeout(timer);
        offA();
        offB();
        offError();
        error ? reject(error) : resolve();
      };
    });
  }

  /** This client's presence id (its Yjs client id). */
  get clientId() {
    return this.doc.clientID;
  }

  /** This client's presence (without the `user` the server attaches), or null while hidden. */
  getPresence() {
    const state = this.awareness.getLocalState();
    if (state == null) return null;
    const { user: _user, ...presence } = state;
    return presence;
  }

  /** Merges `patch` into this client's presence; sent at most every `presenceThrottleMs` (default 100 ms). */
  updatePresence(patch) {
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
      throw new TandemError('presence must be a JSON object', 'invalid_presence');
    }
    stringify(patch);
    const state = this.awareness.getLocalState() ?? {};
    this.awareness.setLocalState({ ...state, ...patch });
    this._emitter.emit('my-presence', this.getPresence());
  }

  /** The other clients: `[{ clientId, presence, user }]` (`user` is set by the server from their token). Stable between changes. */
  getOthers() {
    if (this._othersCache) return this._othersCache;
    const own = this.doc.clientID;
    const others = [];
    for (const [clientId, state] of this.awareness.getStates()) {
      if (clientId === own || state == null) continue;
      const { user = null, ...presence } = state;
      others.push({ clientId, presence, user });
    }
    others.sort((a, b) => a.clientId - b.clientId);
    this._othersCache = Object.freeze(others);
    return this._othersCache;
  }

  /** Sends a custom event to the room's other clients. Throws `not_connected` while offline. */
  broadcastEvent(event) {
    const json = stringify(event);
    if (!this._conn) throw new TandemError('not connected', 'not_connected');
    this._flushLocal();
    this._send(
      frame((e) => {
        encoding.writeVarUint(e, MSG_EVENT);
        encoding.writeVarString(e, json);
      }),
    );
  }

  /**
   * Subscribes to `others` (list), `status` (name), `sync-status`, `event`
   * ({event, connectionId, userId}), `storage` (any document change), `error`
   * (TandemError), `my-presence`, `self`, `lost-connection` or `history`.
   * Returns the unsubscribe function.
   */
  subscribe(kind, cb) {
    return this._emitter.on(kind, cb);
  }

  getMap(name) {
    return new SharedMap(this, name);
  }

  getList(name) {
    return new SharedList(this, name);
  }

  getText(name) {
    return new SharedText(this, name);
  }

  /** Runs `fn` as one transaction: one update, one undo step. */
  batch(fn) {
    let result;
    this.doc.transact(() => {
      result = fn();
    }, this._localOrigin());
    return result;
  }

  _localOrigin() {
    return this.history._manager;
  }

  /**
   * Undo/redo of this client's own changes (a Y.UndoManager over the whole document,
   * tracking local transactions only): `{ undo, redo, canUndo, canRedo, clear, manager }`.
   */
  get history() {
    if (!this._undo) {
      // Track every root type the document has or gets: registered before the manager's
      // own handler, so a root created inside a transaction is in scope when it looks.
      let manager = null;
      const addAll = () => {
        for (const type of this.doc.share.values()) {
          if (manager && !manager.scope.includes(type)) manager.addToScope(type);
        }
      };
      this.doc.on('afterTransaction', addAll);
      this._untrackRoots = () => this.doc.off('afterTransaction', addAll);
      manager = new Y.UndoManager([], { doc: this.doc, trackedOrigins: new Set([null, undefined]) });
      manager.trackedOrigins.add(manager);
      addAll();
      const notify = () => this._emitter.emit('history', { canUndo: manager.canUndo(), canRedo: manager.canRedo() });
      for (const e of ['stack-item-added', 'stack-item-popped', 'stack-cleared']) manager.on(e, notify);
      this._undo = {
        _manager: manager,
        manager,
        undo: () => manager.undo(),
        redo: () => manager.redo(),
        canUndo: () => manager.canUndo(),
        canRedo: () => manager.canRedo(),
        clear: () => manager.clear(),
      };
    }
    return this._undo;
  }

  /** Connects now (skips the reconnect wait, or retries after a fatal error). */
  reconnect() {
    if (this._left) return;
    if (this._socket || this._connecting) return;
    this._clearTimer('reconnect');
    if (this._status === 'disconnected') this._policy.reset();
    this._connectNow(this._needFreshToken ?? false);
  }

  /** Drops the connection (as if offline) without leaving; `reconnect()` comes back. */
  disconnect() {
    this._stopSocket('disconnect');
    this._clearTimer('reconnect');
    this._setStatus('disconnected');
  }

  /** Releases one `enterRoom` reference; the last one leaves the room. */
  leave() {
    if (this._left) return;
    this._refs -= 1;
    if (this._refs > 0) return;
    this.destroy();
  }

  /** Leaves now whatever the reference count: pending changes are sent, presence withdrawn, the socket closed. */
  destroy() {
    if (this._left) return;
    this._left = true;
    this._refs = 0;
    if (this._conn) {
      this._flushLocal();
      this._sendLeavePresence();
    }
    this._stopSocket('leaving the room');
    for (const timer of this._timers) clearTimeout(timer.id);
    this._timers.clear();
    this._setStatus('disconnected');
    this.doc.off('update', this._onDocUpdate);
    this.doc.off('update', this._onRemoteDocChange);
    this.awareness.off('update', this._onAwarenessUpdate);
    this.awareness.off('change', this._onAwarenessChange);
    this.awareness.destroy();
    this._undo?.manager.destroy();
    this._untrackRoots?.();
    if (this._beforeUnload) window.removeEventListener('beforeunload', this._beforeUnload);
    this._persistence?.destroy?.();
    this._onLeave?.();
  }

  // ---- connection life cycle ----

  _timer(name, ms, fn) {
    this._clearTimer(name);
    const timer = { name, id: setTimeout(() => {
      this._timers.delete(timer);
      fn();
    }, Math.max(0, ms)) };
    this._timers.add(timer);
  }

  _clearTimer(name) {
    for (const timer of this._timers) {
      if (timer.name === name) {
        clearTimeout(timer.id);
        this._timers.delete(timer);
      }
    }
  }

  _setStatus(status) {
    if (this._status === status) return;
    const was = this._status;
    this._status = status;
    this._emitter.emit('status', status);
    if (was === 'synced' && status !== 'synced') this._emitter.emit('lost-connection', status);
    this._updateSyncStatus();
  }

  _updateSyncStatus() {
    const next = this._status === 'synced' && !this.hasUnsyncedChanges() ? 'synchronized' : 'synchronizing';
    if (next !== this._syncStatus) {
      this._syncStatus = next;
      this._emitter.emit('sync-status', next);
    }
  }

  _error(error) {
    this._emitter.emit('error', error);
  }

  async _connectNow(_refreshToken) {
    if (this._left) return;
    const generation = ++this._generation;
    this._connecting = true;
    this._needFreshToken = false;
    this._setStatus(this._policy.failures === 0 ? 'connecting' : 'reconnecting');
    let token;
    if (this._getToken) {
      try {
        // Asked on every connect: the app's provider decides whether to cache.
        token = await this._getToken(this.id);
        if (typeof token !== 'string') throw new TandemError('getToken gave no token', 'token');
      } catch (cause) {
        if (generation !== this._generation || this._left) return;
        this._connecting = false;
        this._error(cause instanceof TandemError ? cause : new TandemError(`getToken failed: ${cause?.message ?? cause}`, 'token', { cause }));
        this._follow(this._policy.afterTimeout());
        return;
      }
      if (generation !== this._generation || this._left) return;
    }
    let url = this._url + encodeURIComponent(this.id) + '?tandem=1';
    if (token) url += `&token=${encodeURIComponent(token)}`;
    let socket;
    try {
      socket = new this._WebSocket(url);
    } catch (cause) {
      this._connecting = false;
      this._error(new TandemError(`could not open the socket: ${cause?.message ?? cause}`, 'connection'));
      this._follow(this._policy.afterTimeout());
      return;
    }
    socket.binaryType = 'arraybuffer';
    this._socket = socket;
    this._socketsOpened = (this._socketsOpened ?? 0) + 1;
    this._timer('connect-timeout', this._options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, () => {
      if (this._socket === socket && !this._conn) {
        this._stopSocket('connect timeout');
        this._follow(this._policy.afterTimeout());
      }
    });
    socket.onopen = () => {
      if (this._socket !== socket) return;
      this._clearTimer('connect-timeout');
      this._connecting = false;
      this._onOpen();
    };
    socket.onmessage = (event) => {
      if (this._socket !== socket) return;
      if (typeof event.data === 'string') return; // not part of the protocol
      this._onFrame(new Uint8Array(event.data));
    };
    socket.onclose = (event) => {
      if (this._socket !== socket) return;
      this._onClose(event.code ?? 1006, event.reason ?? '');
    };
    socket.onerror = () => {};
  }

  _onOpen() {
    this._conn = {
      synced: false,
      forwarding: false,
      readOnly: false,
      sent: 0, // update messages sent on this connection
      acked: 0, // ... of which the server says are durable
      acks: false, // the server sends acknowledgements (it said hello)
      lastRecv: now(),
    };
    this._lastLocalSeq = 0;
    this._pending = [];
    this._setStatus('connected');
    this._send(syncFrame(SYNC_STEP1, Y.encodeStateVector(this.doc)));
    // The server bumped our presence clock by one when it removed our state as the last
    // connection ended, and ignores an equal clock: jump by two (like the Rust session).
    const meta = this.awareness.meta.get(this.doc.clientID);
    if (meta && this.awareness.getLocalState() !== null) {
      meta.clock += 1;
      this.awareness.setLocalState(this.awareness.getLocalState());
    }
    this._sendPresenceNow();
    this._armSilence();
  }

  _armSilence() {
    this._timer('silence', this._options.silenceTimeoutMs ?? DEFAULTS.silenceTimeoutMs, () => {
      if (!this._conn) return;
      // The server echoes every presence renewal (15 s): silence means a dead socket.
      if (now() - this._conn.lastRecv >= (this._options.silenceTimeoutMs ?? DEFAULTS.silenceTimeoutMs) - 5) {
        this._stopSocket('silent connection');
        this._follow(this._policy.afterTimeout());
      } else {
        this._armSilence();
      }
    });
  }

  _onClose(code, reason) {
    const synced = this._conn?.synced ?? false;
    this._dropConnection();
    this._socket = null;
    this._connecting = false;
    this._follow(this._policy.afterClose(code, reason, synced));
  }

  _follow(plan) {
    if (this._left) return;
    if (plan.stop) {
      const { code, reason, attempts } = plan.stop;
      const error = new TandemError(
        code === 'unauthorized' ? `the server refused ${attempts} tokens in a row: ${reason}` : `${code.replace('_', ' ')}: ${reason}`,
        code,
        { reason, fatal: true },
      );
      this._setStatus('disconnected');
      this._error(error);
      return;
    }
    if (plan.notice) this._error(new TandemError(`rate or plan limit reached, retrying in ${plan.notice.retryAfterMs} ms: ${plan.notice.reason}`, 'rate_limited', { retryAfterMs: plan.notice.retryAfterMs }));
    this._needFreshToken = plan.refreshToken;
    this._setStatus('reconnecting');
    this._timer('reconnect', plan.delayMs, () => this._connectNow(plan.refreshToken));
  }

  _stopSocket(reason) {
    const socket = this._socket;
    this._socket = null;
    this._connecting = false;
    this._generation += 1;
    this._clearTimer('connect-timeout');
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      try {
        socket.close(1000, reason);
      } catch {
        // already closed
      }
    }
    this._dropConnection();
  }

  _dropConnection() {
    const conn = this._conn;
    this._conn = null;
    this._clearTimer('silence');
    this._clearTimer('refresh');
    this._clearTimer('presence');
    if (!conn) return;
    if (this._pending.length > 0) this._unsentLocal = true;
    this._pending = [];
    // Changes not acknowledged on this connection go again in the next one's step 2
    // (the server's answer to our state vector says what it lacks).
    if (conn.acked < this._lastLocalSeq) this._unsentLocal = true;
    this._lastLocalSeq = 0;
    const others = [...this.awareness.getStates().keys()].filter((id) => id !== this.doc.clientID);
    if (others.length) awarenessProtocol.removeAwarenessStates(this.awareness, others, this);
    this._updateSyncStatus();
  }

  // ---- frames ----

  _send(bytes) {
    const socket = this._socket;
    if (!socket || socket.readyState !== 1) return;
    socket.send(bytes);
  }

  _onFrame(bytes) {
    const conn = this._conn;
    if (!conn) return;
    conn.lastRecv = now();
    let d;
    let type;
    try {
      d = decoding.createDecoder(bytes);
      type = decoding.readVarUint(d);
    } catch {
      this._error(new TandemError('unreadable message from the server', 'protocol'));
      return;
    }
    try {
      switch (type) {
        case MSG_SYNC:
          this._onSync(d);
          break;
        case MSG_AWARENESS:
          awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(d), this);
          break;
        case MSG_AUTH:
          if (decoding.readVarUint(d) === 0) {
            conn.readOnly = true;
            conn.forwarding = false;
            this._error(new TandemError(`read-only: ${decoding.readVarString(d)}`, 'read_only'));
          }
          break;
        case MSG_QUERY_AWARENESS:
          this._sendPresenceNow();
          break;
        case MSG_EVENT: {
          const { event, connectionId = null, userId = null } = JSON.parse(decoding.readVarString(d));
          this._emitter.emit('event', { event, connectionId, userId });
          break;
        }
        case MSG_SESSION:
          this._onSession(d);
          break;
        default:
          // A type this client does not know: skip it, like the stock client.
          break;
      }
    } catch (cause) {
      this._error(new TandemError(`unreadable message from the server: ${cause?.message ?? cause}`, 'protocol'));
    }
  }

  _onSync(d) {
    const conn = this._conn;
    const sub = decoding.readVarUint(d);
    const payload = decoding.readVarUint8Array(d);
    if (sub === SYNC_STEP1) {
      // Local updates are forwarded from here on: everything before is in this answer.
      if (!conn.readOnly) conn.forwarding = true;
      const diff = Y.encodeStateAsUpdate(this.doc, payload);
      this._pending = [];
      this._sendUpdateFrame(SYNC_STEP2, diff, this._unsentLocal);
      this._unsentLocal = false;
    } else if (sub === SYNC_STEP2 || sub === SYNC_UPDATE) {
      Y.applyUpdate(this.doc, payload, this);
      if (sub === SYNC_STEP2 && !conn.synced) {
        conn.synced = true;
        this._everSynced = true;
        this._policy.reset();
        this._setStatus('synced');
      }
    }
  }

  /** Sends a step 2 or update; counts it (the server's "saved" counts these). */
  _sendUpdateFrame(sub, update, local) {
    const conn = this._conn;
    if (!conn) return;
    conn.sent += 1;
    if (local) this._lastLocalSeq = conn.sent;
    this._send(syncFrame(sub, update));
    this._updateSyncStatus();
  }

  _onSession(d) {
    const conn = this._conn;
    const sub = decoding.readVarUint(d);
    if (sub === SESSION_HELLO) {
      const hello = JSON.parse(decoding.readVarString(d));
      conn.acks = true;
      this._self = Object.freeze({ ...hello });
      // Our own state carries the same `user` the others see.
      if (hello.user && this.awareness.getLocalState() !== null) {
        const state = this.awareness.getLocalState();
        if (JSON.stringify(state.user) !== JSON.stringify(hello.user)) {
          this.awareness.setLocalState({ ...state, user: hello.user });
        }
      }
      this._emitter.emit('self', this._self);
      this._scheduleRefresh(hello.expiresAt, hello.expiresInMs);
    } else if (sub === SESSION_REFRESHED) {
      const answer = JSON.parse(decoding.readVarString(d));
      this._onRefreshed(answer);
    } else if (sub === SESSION_SAVED) {
      const upto = decoding.readVarUint(d);
      conn.acked = Math.max(conn.acked, upto);
      this._updateSyncStatus();
      this._emitter.emit('saved', upto);
    }
  }

  // ---- in-band token refresh ----

  /**
   * Schedules the next in-band refresh well before the token expires (`expiresInMs`
   * from now, as the server counts it, so a wrong local clock does not matter; else
   * `expiresAt`, ms since the epoch).
   */
  _scheduleRefresh(expiresAt, expiresInMs) {
    this._clearTimer('refresh');
    if (!this._getToken) return;
    const left = typeof expiresInMs === 'number' ? expiresInMs : typeof expiresAt === 'number' ? expiresAt - Date.now() : undefined;
    if (left === undefined) return;
    // What is left, less a quarter of it (at most a minute, at least half a second):
    // the same rule as the Rust session (protocol/src/client/session.rs).
    const lead = Math.min(60000, Math.max(500, left / 4));
    this._timer('refresh', left - lead, () => this._refreshInBand());
  }

  async _refreshInBand() {
    const conn = this._conn;
    if (!conn) return;
    let token;
    try {
      token = await this._getToken(this.id);
    } catch (cause) {
      this._error(new TandemError(`getToken failed: ${cause?.message ?? cause}`, 'token', { cause }));
      // Try again shortly; the server closes with 4401 at expiry if nothing works.
      if (this._conn === conn) this._timer('refresh', 1000, () => this._refreshInBand());
      return;
    }
    if (this._conn !== conn || typeof token !== 'string') return;
    conn.refreshing = true;
    this._send(
      frame((e) => {
        encoding.writeVarUint(e, MSG_SESSION);
        encoding.writeVarUint(e, SESSION_REFRESH);
        encoding.writeVarString(e, token);
      }),
    );
  }

  _onRefreshed(answer) {
    const conn = this._conn;
    conn.refreshing = false;
    if (answer.ok) {
      this._self = Object.freeze({
        ...this._self,
        expiresAt: answer.expiresAt ?? null,
        canWrite: answer.canWrite ?? this._self?.canWrite,
        canPresence: answer.canPresence ?? this._self?.canPresence,
      });
      this._refreshes = (this._refreshes ?? 0) + 1;
      this._emitter.emit('self', this._self);
      this._emitter.emit('token-refreshed', answer);
      this._scheduleRefresh(answer.expiresAt, answer.expiresInMs);
    } else {
      this._error(new TandemError(`the server refused the fresh token: ${answer.reason}`, 'refresh_refused', { closeCode: answer.code }));
      // The connection keeps its old token until it expires (then 4401 → reconnect).
      const left = (this._self?.expiresAt ?? 0) - Date.now();
      if (left > 2000) this._timer('refresh', left / 2, () => this._refreshInBand());
    }
  }

  /** Sockets opened and in-band refreshes done so far (for diagnostics and tests). */
  get stats() {
    return { sockets: this._socketsOpened ?? 0, refreshes: this._refreshes ?? 0 };
  }

  // ---- local changes and presence ----

  _scheduleFlush() {
    if (this._flushQueued) return;
    this._flushQueued = true;
    queueMicrotask(() => {
      this._flushQueued = false;
      this._flushLocal();
    });
  }

  _flushLocal() {
    if (!this._conn || this._pending.length === 0) return;
    const pending = this._pending;
    this._pending = [];
    const update = pending.length === 1 ? pending[0] : Y.mergeUpdates(pending);
    this._sendUpdateFrame(SYNC_UPDATE, update, true);
  }

  _schedulePresence() {
    if (!this._conn) return;
    const wait = (this._lastPresenceAt ?? -Infinity) + this._presenceThrottleMs - now();
    if (wait <= 0) {
      this._sendPresenceNow();
    } else if (!this._presenceQueued) {
      this._presenceQueued = true;
      this._timer('presence', wait, () => {
        this._presenceQueued = false;
        this._sendPresenceNow();
      });
    }
  }

  _sendPresenceNow() {
    if (!this._conn) return;
    this._presenceQueued = false;
    this._clearTimer('presence');
    this._lastPresenceAt = now();
    // After any local change, so a cursor never points into text the server lacks.
    this._flushLocal();
    const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.doc.clientID]);
    this._send(
      frame((e) => {
        encoding.writeVarUint(e, MSG_AWARENESS);
        encoding.writeVarUint8Array(e, update);
      }),
    );
    this._presenceSent = (this._presenceSent ?? 0) + 1;
  }

  /** `null` at the same clock: y-protocols' removal, as y-websocket's disconnect sends. */
  _sendLeavePresence() {
    const meta = this.awareness.meta.get(this.doc.clientID);
    if (!meta || this.awareness.getLocalState() === null) return;
    const update = frame((e) => {
      encoding.writeVarUint(e, 1);
      encoding.writeVarUint(e, this.doc.clientID);
      encoding.writeVarUint(e, meta.clock);
      encoding.writeVarString(e, 'null');
    });
    this._send(
      frame((e) => {
        encoding.writeVarUint(e, MSG_AWARENESS);
        encoding.writeVarUint8Array(e, update);
      }),
    );
  }
}

function isFatal(error) {
  return error?.fatal === true;
}
