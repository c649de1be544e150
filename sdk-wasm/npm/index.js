// @tandem/client: the framework-agnostic API over the tandem-wasm module. The room's
// document, presence and connection live in WebAssembly (sdk-wasm/src); this file turns
// its JSON-over-the-boundary calls into objects, subscriptions and errors.
import initWasm, { RoomCore, setErrorClass, closeAction } from './wasm/tandem_wasm.js';

/** An error from Tandem: `code` is stable (`unauthorized`, `forbidden`, `not_connected`…). */
export class TandemError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'TandemError';
    this.code = code;
  }
}

async function loadWasm() {
  const url = new URL('./wasm/tandem_wasm_bg.wasm', import.meta.url);
  let module_or_path = url;
  if (url.protocol === 'file:') {
    // Node cannot fetch file: URLs; read the file instead. The specifier is hidden from
    // bundlers, which never take this branch.
    const fs = 'node:fs/promises';
    const { readFile } = await import(/* @vite-ignore */ /* webpackIgnore: true */ fs);
    module_or_path = await readFile(url);
  }
  await initWasm({ module_or_path });
  setErrorClass(TandemError);
}

/** Resolves once the WebAssembly module is loaded (importing this module waits for it). */
export const ready = loadWasm();
await ready;

export { closeAction };

const parse = (json) => (json === undefined ? undefined : JSON.parse(json));
const stringify = (value) => {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TandemError('value is not JSON-serialisable', 'invalid_argument');
  return json;
};

/**
 * A client for one Tandem server. `getToken(room)` returns (a promise of) a room token;
 * `authEndpoint` is a URL that answers `POST {"room": name}` with `{"token": "…"}`.
 * Without either, rooms are entered anonymously.
 */
export function createClient(options) {
  const { baseUrl, authEndpoint, getToken, fetch: fetchImpl } = options ?? {};
  if (typeof baseUrl !== 'string') throw new TandemError('createClient needs a baseUrl', 'invalid_argument');
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
  const rooms = new Set();
  return {
    enterRoom(name, roomOptions = {}) {
      const room = new Room(baseUrl, name, provider, roomOptions, () => rooms.delete(room));
      rooms.add(room);
      return room;
    },
    getRooms() {
      return [...rooms];
    },
    leaveAll() {
      for (const room of [...rooms]) room.leave();
    },
  };
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

/** A room entered with `client.enterRoom`. */
export class Room {
  constructor(baseUrl, name, getToken, options, onLeave) {
    this.id = name;
    this._emitter = new Emitter();
    this._types = new Map(); // subscription id → callback
    this._others = [];
    this._status = 'initial';
    this._onLeave = onLeave;
    this._left = false;
    const presence = options.initialPresence === undefined ? undefined : stringify(options.initialPresence);
    this._core = new RoomCore(baseUrl, name, getToken, presence, (kind, payload) => this._dispatch(kind, payload));
    this._status = this._core.status();
    this._others = parse(this._core.others());
  }

  _dispatch(kind, payload) {
    switch (kind) {
      case 'status':
        this._status = payload;
        this._emitter.emit('status', payload);
        break;
      case 'others':
        this._others = JSON.parse(payload);
        this._emitter.emit('others', this._others);
        break;
      case 'event': {
        const { event, connectionId, userId } = JSON.parse(payload);
        this._emitter.emit('event', { event, connectionId, userId });
        break;
      }
      case 'error':
        this._emitter.emit('error', payload);
        break;
      case 'storage':
        this._emitter.emit('storage');
        break;
      case 'type':
        this._types.get(payload)?.();
        break;
    }
  }

  /** `initial`, `connecting`, `connected`, `synced`, `reconnecting` or `disconnected`. */
  getStatus() {
    return this._status;
  }

  /** Resolves when the room is synced (rejects on a fatal error or timeout). */
  waitUntilSynced(timeoutMs = 30000) {
    if (this._status === 'synced') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new TandemError('not synced in time', 'timeout')), timeoutMs);
      const offStatus = this.subscribe('status', (s) => s === 'synced' && done());
      const offError = this.subscribe('error', (e) => e.code !== 'connection' && e.code !== 'rate_limited' && e.code !== 'token' && done(e));
      const done = (error) => {
        clearTimeout(timer);
        offStatus();
        offError();
        error ? reject(error) : resolve();
      };
    });
  }

  /** This client's presence id (its Yjs client id). */
  get clientId() {
    return this._core.clientId();
  }

  getPresence() {
    return JSON.parse(this._core.presence());
  }

  /** Merges `patch` into this client's presence (sent at once, or on reconnect). */
  updatePresence(patch) {
    this._core.updatePresence(stringify(patch));
    this._emitter.emit('my-presence', this.getPresence());
  }

  /** The other clients: `[{ clientId, presence, user }]` (`user` is set by the server from their token). */
  getOthers() {
    return this._others;
  }

  /** Sends a custom event to the room's other clients. Throws `not_connected` while offline. */
  broadcastEvent(event) {
    this._core.broadcastEvent(stringify(event));
  }

  /**
   * Subscribes to `others` (list), `status` (name), `event` ({event, connectionId, userId}),
   * `storage` (any document change), `error` (TandemError) or `my-presence`.
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

  _observe(kind, name, cb) {
    const id = this._core.observe(kind, name);
    this._types.set(id, cb);
    return () => {
      if (this._types.delete(id) && !this._left) this._core.unobserve(id);
    };
  }

  /** Connects now (skips the reconnect wait, or retries after a fatal error). */
  reconnect() {
    this._core.reconnect();
  }

  /** Leaves the room: pending changes are sent, presence withdrawn, the socket closed. */
  leave() {
    if (this._left) return;
    this._left = true;
    this._core.leave();
    this._core.free();
    this._onLeave?.();
  }
}

class SharedType {
  constructor(room, name) {
    this.room = room;
    this.name = name;
  }
  get _core() {
    return this.room._core;
  }
}

/** A root Y.Map of JSON values. */
export class SharedMap extends SharedType {
  get(key) {
    return parse(this._core.mapGet(this.name, key));
  }
  set(key, value) {
    this._core.mapSet(this.name, key, stringify(value));
  }
  delete(key) {
    this._core.mapDelete(this.name, key);
  }
  has(key) {
    return this._core.mapGet(this.name, key) !== undefined;
  }
  toJSON() {
    return JSON.parse(this._core.mapToJson(this.name));
  }
  keys() {
    return Object.keys(this.toJSON());
  }
  subscribe(cb) {
    return this.room._observe('map', this.name, () => cb(this));
  }
}

/** A root Y.Array of JSON values. */
export class SharedList extends SharedType {
  get length() {
    return this._core.listLength(this.name);
  }
  get(index) {
    return parse(this._core.listGet(this.name, index));
  }
  push(...items) {
    this._core.listPush(this.name, stringify(items));
  }
  insert(index, ...items) {
    this._core.listInsert(this.name, index, stringify(items));
  }
  delete(index, count = 1) {
    this._core.listDelete(this.name, index, count);
  }
  toArray() {
    return JSON.parse(this._core.listToJson(this.name));
  }
  toJSON() {
    return this.toArray();
  }
  subscribe(cb) {
    return this.room._observe('list', this.name, () => cb(this));
  }
}

/** A root Y.Text (plain text; indexes in UTF-16 code units, like JavaScript strings). */
export class SharedText extends SharedType {
  get length() {
    return this._core.textLength(this.name);
  }
  insert(index, chunk) {
    this._core.textInsert(this.name, index, chunk);
  }
  delete(index, count) {
    this._core.textDelete(this.name, index, count);
  }
  toString() {
    return this._core.textToString(this.name);
  }
  toJSON() {
    return this.toString();
  }
  subscribe(cb) {
    return this.room._observe('text', this.name, () => cb(this));
  }
}
