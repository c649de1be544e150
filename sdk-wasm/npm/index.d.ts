import * as Y from 'yjs';
import type { Awareness } from 'y-protocols/awareness';

export { Y };

/** JSON values: what presence, events and shared state hold. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** The shape of a room's shared state: root name → a map (object), a list (array) or a text (string). */
export type StorageShape = Record<string, JsonObject | Json[] | string>;

export type Status = 'initial' | 'connecting' | 'connected' | 'synced' | 'reconnecting' | 'disconnected';

/** `synchronizing` while local changes are not yet durable on the server (or the room is not synced). */
export type SyncStatus = 'synchronizing' | 'synchronized';

export type ErrorCode =
  | 'malformed' | 'unauthorized' | 'forbidden' | 'room_deleted' | 'too_large' | 'rate_limited'
  | 'read_only' | 'protocol' | 'connection' | 'token' | 'refresh_refused' | 'not_connected'
  | 'invalid_presence' | 'invalid_argument' | 'out_of_range' | 'document_busy' | 'timeout' | 'no_room';

/** Every error the package throws or emits. */
export class TandemError extends Error {
  constructor(message: string, code: ErrorCode, details?: Record<string, unknown>);
  readonly name: 'TandemError';
  readonly code: ErrorCode;
  /** Set on errors that stopped the room (no more reconnects). */
  readonly fatal?: boolean;
  /** `rate_limited`: how long the room waits before reconnecting. */
  readonly retryAfterMs?: number;
  /** `refresh_refused`: the close code a connect with that token would have got. */
  readonly closeCode?: number;
}

/** Already resolved (nothing to load; kept for older code that awaited it). */
export const ready: Promise<void>;

/** What to do after the server closed a socket with `code`. */
export function closeAction(code: number): 'backoff' | 'refresh-token' | 'retry-after' | 'never';
/** The `retry-after=<seconds>` hint of a close reason, in milliseconds. */
export function retryAfterMs(reason: string): number | undefined;
export const CLOSE: Readonly<Record<'MALFORMED' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'ROOM_DELETED' | 'TOO_LARGE' | 'RATE_LIMITED' | 'RESTARTING' | 'TRY_AGAIN_LATER', number>>;

export interface ClientOptions {
  /** `http(s)://host[:port]` of the Tandem server (or `ws(s)://`). */
  baseUrl: string;
  /** A URL answering `POST {"room": name}` with `{"token": "…"}` (cookies included). */
  authEndpoint?: string;
  /** Returns a token for `room`; called on every connect and before the token expires (sent in band). */
  getToken?: (room: string) => string | Promise<string>;
  /** The fetch used for `authEndpoint` (default: the global one). */
  fetch?: typeof fetch;
  /** The WebSocket class (default: the global one; in Node, `ws`). */
  WebSocket?: unknown;
}

export interface EnterOptions<P extends JsonObject> {
  initialPresence?: P;
  /** Use this document instead of a new one. */
  doc?: Y.Doc;
  /** Presence is sent at most this often (default 100 ms); the last state always goes. */
  presenceThrottleMs?: number;
  /** Offline persistence, e.g. `(doc, name) => new IndexeddbPersistence(name, doc)` (y-indexeddb). */
  persistence?: (doc: Y.Doc, room: string) => { destroy(): unknown };
  /** Ask before the page unloads while changes are not yet saved. */
  beforeUnloadGuard?: boolean;
  /** Connect at once (default true). */
  autoConnect?: boolean;
  reconnect?: { backoffBaseMs?: number; backoffCapMs?: number; maxUnauthorized?: number; maxRetryAfterMs?: number };
  connectTimeoutMs?: number;
  silenceTimeoutMs?: number;
}

export interface Client {
  /** One room (one socket) per name: entering again returns the same room and counts a reference. */
  enterRoom<P extends JsonObject = JsonObject, S extends StorageShape = StorageShape>(
    name: string,
    options?: EnterOptions<P>,
  ): Room<P, S>;
  getRoom(name: string): Room | null;
  getRooms(): Room[];
  leaveAll(): void;
}

export function createClient(options: ClientOptions): Client;

/** The server-attached user: the token's user info with its `id`. */
export type User = { id: string } & JsonObject;

/** Another client in the room. */
export interface Other<P extends JsonObject = JsonObject> {
  clientId: number;
  presence: P;
  /** Set by the server from the other client's token: `{ id, ...userInfo }`. */
  user: User | null;
}

/** Who the server says this client is (its hello). */
export interface Self {
  connectionId: number;
  userId: string | null;
  user: User | null;
  canWrite: boolean;
  canPresence: boolean;
  /** When the current token expires (ms since the epoch), or null. */
  expiresAt: number | null;
  /** The same, as milliseconds from when the server said it. */
  expiresInMs?: number;
}

export interface RoomEvent<E extends Json = Json> {
  event: E;
  /** The sender's connection, or null when the server (REST API) sent it. */
  connectionId: number | null;
  userId: string | null;
}

export interface History {
  undo(): void;
  redo(): void;
  canUndo(): boolean;
  canRedo(): boolean;
  clear(): void;
  /** The Y.UndoManager (local changes only). */
  readonly manager: Y.UndoManager;
}

type ListItem<T> = T extends (infer I)[] ? I : Json;
type MapValue<T> = T extends JsonObject ? T[keyof T] : Json;

export class Room<P extends JsonObject = JsonObject, S extends StorageShape = StorageShape> {
  readonly id: string;
  readonly clientId: number;
  /** The room's document: hand it to any Yjs binding. */
  readonly doc: Y.Doc;
  /** The room's presence as y-protocols' Awareness (editor cursors use it). */
  readonly awareness: Awareness;
  readonly history: History;
  readonly stats: { sockets: number; refreshes: number };
  getStatus(): Status;
  getSyncStatus(): SyncStatus;
  hasUnsyncedChanges(): boolean;
  getSelf(): Self | null;
  waitUntilSynced(timeoutMs?: number): Promise<void>;
  waitUntilSaved(timeoutMs?: number): Promise<void>;
  getPresence(): P | null;
  updatePresence(patch: Partial<P>): void;
  getOthers(): readonly Other<P>[];
  broadcastEvent(event: Json): void;
  batch<T>(fn: () => T): T;
  subscribe(kind: 'others', cb: (others: readonly Other<P>[]) => void): () => void;
  subscribe(kind: 'status', cb: (status: Status) => void): () => void;
  subscribe(kind: 'sync-status', cb: (status: SyncStatus) => void): () => void;
  subscribe(kind: 'event', cb: (event: RoomEvent) => void): () => void;
  subscribe(kind: 'storage', cb: () => void): () => void;
  subscribe(kind: 'error', cb: (error: TandemError) => void): () => void;
  subscribe(kind: 'my-presence', cb: (presence: P | null) => void): () => void;
  subscribe(kind: 'self', cb: (self: Self) => void): () => void;
  subscribe(kind: 'saved', cb: (upTo: number) => void): () => void;
  subscribe(kind: 'lost-connection', cb: (status: Status) => void): () => void;
  subscribe(kind: 'history', cb: (state: { canUndo: boolean; canRedo: boolean }) => void): () => void;
  getMap<K extends keyof S & string>(name: K): SharedMap<MapValue<S[K]>>;
  getList<K extends keyof S & string>(name: K): SharedList<ListItem<S[K]>>;
  getText<K extends keyof S & string>(name: K): SharedText;
  reconnect(): void;
  disconnect(): void;
  /** Releases one enterRoom reference; the last one leaves. */
  leave(): void;
  /** Leaves now, whatever the reference count. */
  destroy(): void;
}

export class SharedMap<V extends Json = Json> {
  readonly name: string;
  readonly y: Y.Map<V>;
  /** Sets `key` to a nested map (LiveObject-style); returns it. */
  setMap<T extends Json = Json>(key: string, entries?: Record<string, T>): SharedMap<T>;
  setList<T extends Json = Json>(key: string, items?: T[]): SharedList<T>;
  getMap<T extends Json = Json>(key: string): SharedMap<T> | undefined;
  getList<T extends Json = Json>(key: string): SharedList<T> | undefined;
  get(key: string): V | undefined;
  set(key: string, value: V): void;
  delete(key: string): void;
  has(key: string): boolean;
  keys(): string[];
  toJSON(): Record<string, V>;
  subscribe(cb: (map: SharedMap<V>) => void): () => void;
}

export class SharedList<T extends Json = Json> {
  readonly name: string;
  readonly y: Y.Array<T>;
  /** Appends a nested map (LiveObject-style); returns it. */
  pushMap<U extends Json = Json>(entries?: Record<string, U>): SharedMap<U>;
  pushList<U extends Json = Json>(items?: U[]): SharedList<U>;
  getMap<U extends Json = Json>(index: number): SharedMap<U> | undefined;
  getList<U extends Json = Json>(index: number): SharedList<U> | undefined;
  readonly length: number;
  get(index: number): T | undefined;
  push(...items: T[]): void;
  insert(index: number, ...items: T[]): void;
  set(index: number, item: T): void;
  move(from: number, to: number): void;
  delete(index: number, count?: number): void;
  toArray(): T[];
  toJSON(): T[];
  subscribe(cb: (list: SharedList<T>) => void): () => void;
}

export class SharedText {
  readonly name: string;
  readonly y: Y.Text;
  readonly length: number;
  insert(index: number, chunk: string, attributes?: Record<string, Json>): void;
  delete(index: number, count: number): void;
  format(index: number, length: number, attributes: Record<string, Json>): void;
  toString(): string;
  toJSON(): string;
  subscribe(cb: (text: SharedText) => void): () => void;
}
