/** Rooms of the secret key's project: listing, documents, live users and events. */
import { Http, seg, type Ok, type Query } from './http.js';
import type {
  ActiveUser,
  Broadcasted,
  Diff,
  Forked,
  NamedVersion,
  Restored,
  Room,
  RoomPage,
  VersionPage,
} from './types.js';

/**
 * A point of a room's history: a `Date`, an RFC 3339 time, or a version id from
 * `rooms.versions` (`v<first>-<last>`, `c<upto>`).
 */
export type At = Date | string;

function at(value: At): string {
  return value instanceof Date ? value.toISOString() : value;
}

/** Options of `rooms.list`. */
export interface ListRoomsOptions {
  /** Only rooms whose name starts with this. */
  prefix?: string;
  /** Page size asked of the server, 1 to 100 (default 100 when iterating). */
  pageSize?: number;
}

/** `for await (const room of tandem.rooms.list())`, or `.pages()` for whole pages. */
export class RoomList implements AsyncIterable<Room> {
  readonly #http: Http;
  readonly #options: ListRoomsOptions;

  constructor(http: Http, options: ListRoomsOptions) {
    this.#http = http;
    this.#options = options;
  }

  /** One page: the rooms after `cursor` (the previous page's `nextCursor`). */
  page(cursor?: string): Promise<RoomPage> {
    const query: Query<'listRooms'> = { limit: this.#options.pageSize ?? 100 };
    if (this.#options.prefix !== undefined) query.prefix = this.#options.prefix;
    if (cursor !== undefined) query.cursor = cursor;
    return this.#http.request<Ok<'listRooms'>>('GET', '/v1/rooms', { query });
  }

  /** Every page in order, following `nextCursor` until the last. */
  async *pages(): AsyncGenerator<RoomPage, void, undefined> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.page(cursor);
      yield page;
      if (page.nextCursor === undefined || page.nextCursor === null) return;
      cursor = page.nextCursor;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Room, void, undefined> {
    for await (const page of this.pages()) yield* page.data;
  }

  /** Every room in one array (fine for small projects; iterate for large ones). */
  async toArray(): Promise<Room[]> {
    const all: Room[] = [];
    for await (const room of this) all.push(room);
    return all;
  }
}

export class Rooms {
  readonly #http: Http;

  constructor(http: Http) {
    this.#http = http;
  }

  /** The project's rooms, by name; iterate it (pages are fetched as needed). */
  list(options: ListRoomsOptions = {}): RoomList {
    return new RoomList(this.#http, options);
  }

  /** One room with its live connection count (404 `not_found` if it does not exist). */
  get(roomId: string): Promise<Room> {
    return this.#http.request<Ok<'getRoom'>>('GET', `/v1/rooms/${seg(roomId)}`);
  }

  /** Deletes the room: its connections close with 4404 and its document is erased. */
  async delete(roomId: string): Promise<void> {
    await this.#http.request<void>('DELETE', `/v1/rooms/${seg(roomId)}`, { as: 'none' });
  }

  /**
   * The document as JSON: each root type by name (maps as objects, arrays, text as
   * strings); with `at`, as it was then (410 `outside_history` past the retention).
   */
  getDocument(roomId: string, options: { at?: At } = {}): Promise<Record<string, unknown>> {
    const query: Query<'getDocument'> = {};
    if (options.at !== undefined) query.at = at(options.at);
    return this.#http.request<Ok<'getDocument'>>('GET', `/v1/rooms/${seg(roomId)}/document`, {
      query,
    }) as Promise<Record<string, unknown>>;
  }

  /**
   * The document as a Yjs v1 update (`Y.applyUpdate(doc, bytes)`): all of it, or only
   * what `stateVector` (from `Y.encodeStateVector`) lacks.
   */
  getDocumentUpdate(roomId: string, options: { stateVector?: Uint8Array; at?: At } = {}): Promise<Uint8Array> {
    const query: Query<'getDocumentUpdate'> = {};
    if (options.stateVector !== undefined) query.stateVector = base64(options.stateVector);
    if (options.at !== undefined) query.at = at(options.at);
    return this.#http.request<Uint8Array>('GET', `/v1/rooms/${seg(roomId)}/document/update`, {
      query,
      as: 'bytes',
    });
  }

  /**
   * Applies a Yjs v1 update (e.g. `Y.encodeStateAsUpdate(doc)`) as if a client had sent
   * it: stored durably, then relayed to every connected client. Creates the room.
   */
  async applyUpdate(roomId: string, update: Uint8Array): Promise<void> {
    await this.#http.request<void>('POST', `/v1/rooms/${seg(roomId)}/document/update`, {
      bytes: update,
      as: 'none',
    });
  }

  /** The room's versions, newest first; pass `nextBefore` as `before` for the next page. */
  versions(roomId: string, options: { before?: At; limit?: number } = {}): Promise<VersionPage> {
    const query: Query<'listVersions'> = {};
    if (options.before !== undefined) query.before = at(options.before);
    if (options.limit !== undefined) query.limit = options.limit;
    return this.#http.request<Ok<'listVersions'>>('GET', `/v1/rooms/${seg(roomId)}/versions`, { query });
  }

  /** Names a point of the room's history (now when `at` is absent). */
  nameVersion(roomId: string, name: string, options: { at?: At } = {}): Promise<NamedVersion> {
    const json: { name: string; at?: string } = { name };
    if (options.at !== undefined) json.at = at(options.at);
    return this.#http.request<Ok<'nameVersion'>>('POST', `/v1/rooms/${seg(roomId)}/versions`, { json });
  }

  /** What changed between `from` and `to` (now when absent): keys, text ranges, and by whom. */
  diff(roomId: string, from: At, to?: At): Promise<Diff> {
    const query: Query<'diffVersions'> = { from: at(from) };
    if (to !== undefined) query.to = at(to);
    return this.#http.request<Ok<'diffVersions'>>('GET', `/v1/rooms/${seg(roomId)}/diff`, { query });
  }

  /**
   * Makes the document what it was at `at`, as a new update that every connected client
   * receives live; restore an earlier point to undo it.
   */
  restore(roomId: string, point: At): Promise<Restored> {
    return this.#http.request<Ok<'restoreVersion'>>('POST', `/v1/rooms/${seg(roomId)}/restore`, {
      json: { at: at(point) },
    });
  }

  /** Copies the room as it was at `at` into the new room `to` (409 `room_exists` if it exists). */
  fork(roomId: string, point: At, to: string): Promise<Forked> {
    return this.#http.request<Ok<'forkRoom'>>('POST', `/v1/rooms/${seg(roomId)}/fork`, {
      json: { at: at(point), to },
    });
  }

  /** The users connected to the room now, with their presence. */
  async activeUsers(roomId: string): Promise<ActiveUser[]> {
    const list = await this.#http.request<Ok<'listActiveUsers'>>('GET', `/v1/rooms/${seg(roomId)}/users`);
    return list.data;
  }

  /** Sends a custom event (any JSON value) to everyone connected; not stored. */
  broadcastEvent(roomId: string, event: unknown): Promise<Broadcasted> {
    return this.#http.request<Ok<'broadcastEvent'>>('POST', `/v1/rooms/${seg(roomId)}/events`, {
      json: { event },
    });
  }
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}
