/** Rooms of the secret key's project: listing, documents, live users and events. */
import { Http, seg, type Ok, type Query } from './http.js';
import type { ActiveUser, Broadcasted, Room, RoomPage } from './types.js';

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

  /** The document as JSON: each root type by name (maps as objects, arrays, text as strings). */
  getDocument(roomId: string): Promise<Record<string, unknown>> {
    return this.#http.request<Ok<'getDocument'>>('GET', `/v1/rooms/${seg(roomId)}/document`) as Promise<
      Record<string, unknown>
    >;
  }

  /**
   * The document as a Yjs v1 update (`Y.applyUpdate(doc, bytes)`): all of it, or only
   * what `stateVector` (from `Y.encodeStateVector`) lacks.
   */
  getDocumentUpdate(roomId: string, options: { stateVector?: Uint8Array } = {}): Promise<Uint8Array> {
    const query: Query<'getDocumentUpdate'> = {};
    if (options.stateVector !== undefined) query.stateVector = base64(options.stateVector);
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
