/** JSON values: what presence, events and shared state hold. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** The shape of a room's shared state: root name → a map (object), a list (array) or a text (string). */
export type StorageShape = Record<string, JsonObject | Json[] | string>;

export type Status = 'initial' | 'connecting' | 'connected' | 'synced' | 'reconnecting' | 'disconnected';

export type ErrorCode =
  | 'malformed' | 'unauthorized' | 'forbidden' | 'room_deleted' | 'too_large' | 'rate_limited'
  | 'read_only' | 'protocol' | 'connection' | 'token' | 'not_connected' | 'invalid_presence'
  | 'invalid_argument' | 'out_of_range' | 'document_busy' | 'timeout' | 'no_room';

/** Every error the package throws or emits. */
export class TandemError extends Error {
  constructor(message: string, code: ErrorCode);
  readonly name: 'TandemError';
  readonly code: ErrorCode;
}

/** Resolves once the WebAssembly module is loaded (importing the package already waits for it). */
export const ready: Promise<void>;

/** What to do after the server closed a socket with `code`. */
export function closeAction(code: number): 'backoff' | 'refresh-token' | 'retry-after' | 'never';

export interface ClientOptions {
  /** `http(s)://host[:port]` of the Tandem server (or `ws(s)://`). */
  baseUrl: string;
  /** A URL answering `POST {"room": name}` with `{"token": "…"}` (cookies included). */
  authEndpoint?: string;
  /** Returns a token for `room`; called again when the server refuses or expires it. */
  getToken?: (room: string) => string | Promise<string>;
  /** The fetch used for `authEndpoint` (default: the global one). */
  fetch?: typeof fetch;
}

export interface EnterOptions<P extends JsonObject> {
  initialPresence?: P;
}

export interface Client {
  enterRoom<P extends JsonObject = JsonObject, S extends StorageShape = StorageShape>(
    name: string,
    options?: EnterOptions<P>,
  ): Room<P, S>;
  getRooms(): Room[];
  leaveAll(): void;
}

export function createClient(options: ClientOptions): Client;

/** Another client in the room. */
export interface Other<P extends JsonObject = JsonObject> {
  clientId: number;
  presence: P;
  /** Set by the server from the other client's token: `{ id, ...userInfo }`. */
  user: ({ id: string } & JsonObject) | null;
}

export interface RoomEvent<E extends Json = Json> {
  event: E;
  /** The sender's connection, or null when the server (REST API) sent it. */
  connectionId: number | null;
  userId: string | null;
}

type ListItem<T> = T extends (infer I)[] ? I : Json;
type MapValue<T> = T extends JsonObject ? T[keyof T] : Json;

export class Room<P extends JsonObject = JsonObject, S extends StorageShape = StorageShape> {
  readonly id: string;
  readonly clientId: number;
  getStatus(): Status;
  waitUntilSynced(timeoutMs?: number): Promise<void>;
  getPresence(): P | null;
  updatePresence(patch: Partial<P>): void;
  getOthers(): Other<P>[];
  broadcastEvent(event: Json): void;
  subscribe(kind: 'others', cb: (others: Other<P>[]) => void): () => void;
  subscribe(kind: 'status', cb: (status: Status) => void): () => void;
  subscribe(kind: 'event', cb: (event: RoomEvent) => void): () => void;
  subscribe(kind: 'storage', cb: () => void): () => void;
  subscribe(kind: 'error', cb: (error: TandemError) => void): () => void;
  subscribe(kind: 'my-presence', cb: (presence: P | null) => void): () => void;
  getMap<K extends keyof S & string>(name: K): SharedMap<MapValue<S[K]>>;
  getList<K extends keyof S & string>(name: K): SharedList<ListItem<S[K]>>;
  getText<K extends keyof S & string>(name: K): SharedText;
  reconnect(): void;
  leave(): void;
}

export class SharedMap<V extends Json = Json> {
  readonly name: string;
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
  readonly length: number;
  get(index: number): T | undefined;
  push(...items: T[]): void;
  insert(index: number, ...items: T[]): void;
  delete(index: number, count?: number): void;
  toArray(): T[];
  toJSON(): T[];
  subscribe(cb: (list: SharedList<T>) => void): () => void;
}

export class SharedText {
  readonly name: string;
  readonly length: number;
  insert(index: number, chunk: string): void;
  delete(index: number, count: number): void;
  toString(): string;
  toJSON(): string;
  subscribe(cb: (text: SharedText) => void): () => void;
}
