/**
 * `@tandem/node`: the server-side SDK for Tandem. One `Tandem` client per credential:
 * a project's secret key (`sk_…`) for tokens, rooms, keys and usage, and/or a personal
 * access token (`pat_…`) for a tenant's management routes (audit log, tenant usage).
 */
import { authorize, fetchHandler, nodeHandler, type Authorization, type AuthorizeOptions } from './auth.js';
import type { AuthCallback, NodeRequestLike, NodeResponseLike } from './auth.js';
import { TandemError } from './errors.js';
import { Http, type Ok, type RetryOptions } from './http.js';
import { Keys } from './keys.js';
import { Rooms } from './rooms.js';
import { Events, Webhooks } from './webhooks.js';
import { TenantClient, rangeQuery, type UsageRange } from './tenant.js';
import type { Me, ProjectUsage } from './types.js';

export { TandemError, parseRetryAfter, type Problem } from './errors.js';
export type { RetryOptions } from './http.js';
export type { Authorization, AuthorizeOptions, AuthCallback, AuthDecision, AuthRequest, NodeRequestLike, NodeResponseLike } from './auth.js';
export { RoomList, Rooms, type ListRoomsOptions } from './rooms.js';
export { Keys } from './keys.js';
export { DeliveryList, Events, Webhooks, verifyWebhook, type VerifyOptions, type WebhookHeaders } from './webhooks.js';
export { AuditLog, TenantClient, type UsageRange } from './tenant.js';
export type * from './types.js';
export type { paths, components, operations } from './schema.js';

/** How to reach the server. */
export interface TandemOptions {
  /** The project's secret key (`sk_…`). Server-side only: never ship it to a browser. */
  secretKey?: string;
  /** A personal access token (`pat_…`) for the tenant routes (`tandem.tenant(id)`, `tandem.me()`). */
  pat?: string;
  /** The server, e.g. `https://tandem.example.com` or `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Retry 429 answers after their `Retry-After` (off by default; `true` = 3 attempts, waits ≤ 60 s). */
  retryOn429?: boolean | RetryOptions;
  /** A `fetch` to use instead of the global one (proxies, tests). */
  fetch?: typeof globalThis.fetch;
}

export class Tandem {
  /** The project's rooms (secret key). */
  readonly rooms: Rooms;
  /** The project's keys (secret key). */
  readonly keys: Keys;
  /** The project's webhook endpoints and deliveries (secret key). */
  readonly webhooks: Webhooks;
  /** The project's change feed (secret key). */
  readonly events: Events;
  readonly #project: Http;
  readonly #management: Http;

  constructor(options: TandemOptions) {
    if (typeof options?.baseUrl !== 'string' || options.baseUrl === '') {
      throw new TandemError({ code: 'invalid_argument', status: 0, detail: 'new Tandem() needs a baseUrl' });
    }
    if (options.secretKey === undefined && options.pat === undefined) {
      throw new TandemError({ code: 'invalid_argument', status: 0, detail: 'new Tandem() needs a secretKey or a pat' });
    }
    const common = { baseUrl: options.baseUrl, fetch: options.fetch, retryOn429: options.retryOn429 };
    this.#project = new Http({ ...common, credential: options.secretKey });
    this.#management = new Http({ ...common, credential: options.pat });
    this.rooms = new Rooms(this.#project);
    this.keys = new Keys(this.#project);
    this.webhooks = new Webhooks(this.#project);
    this.events = new Events(this.#project);
  }

  /** Mints a client token for one of your users (POST /v1/tokens). */
  authorize(options: AuthorizeOptions): Promise<Authorization> {
    return authorize(this.#project, options);
  }

  /**
   * A handler for the client SDK's `authEndpoint` (Express, Node `http`, Next.js pages
   * API): reads `{"room"}`, asks `callback` who the caller is (`null` → 403), answers
   * `{ token, expiresAt, projectId }`.
   */
  authEndpoint<R extends NodeRequestLike>(callback: AuthCallback<R>): (req: R, res: NodeResponseLike) => Promise<void> {
    return nodeHandler(this.#project, callback);
  }

  /** The same as `authEndpoint`, as a Fetch-API `(Request) => Promise<Response>`. */
  authEndpointFetch(callback: AuthCallback<Request>): (request: Request) => Promise<Response> {
    return fetchHandler(this.#project, callback);
  }

  /** The project's usage: hourly or daily buckets with rooms, and monthly active users. */
  usage(range: UsageRange): Promise<ProjectUsage> {
    return this.#project.request<Ok<'getUsage'>>('GET', '/v1/usage', { query: rangeQuery(range) });
  }

  /** The PAT's user and tenants (needs `pat`). */
  me(): Promise<Me> {
    return this.#management.request<Ok<'me'>>('GET', '/v1/auth/me');
  }

  /** A tenant's management routes (needs `pat`). */
  tenant(tenantId: string): TenantClient {
    return new TenantClient(this.#management, tenantId);
  }
}

export default Tandem;
