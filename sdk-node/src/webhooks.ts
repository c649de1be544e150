/**
 * Webhooks (secret key): endpoints, their deliveries, and the project's change feed;
 * and `verifyWebhook`, which checks a delivery's Standard Webhooks signature in your
 * receiver.
 */
import { TandemError } from './errors.js';
import { Http, seg, type Body, type Ok, type Query } from './http.js';
import type { Delivery, DeliveryPage, EventPage, ProjectEvent, TestDelivery, Webhook, WebhookWithSecret } from './types.js';

/** The project's deliveries of one endpoint, newest first: iterate, or read `.page()`s. */
export class DeliveryList implements AsyncIterable<Delivery> {
  readonly #http: Http;
  readonly #webhookId: string;
  readonly #pageSize: number;

  constructor(http: Http, webhookId: string, pageSize: number) {
    this.#http = http;
    this.#webhookId = webhookId;
    this.#pageSize = pageSize;
  }

  /** Deliveries of events with a seq below `before` (the previous page's `nextCursor`). */
  page(before?: number): Promise<DeliveryPage> {
    const query: Query<'listWebhookDeliveries'> = { limit: this.#pageSize };
    if (before !== undefined) query.before = before;
    return this.#http.request<Ok<'listWebhookDeliveries'>>('GET', `/v1/webhooks/${seg(this.#webhookId)}/deliveries`, { query });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Delivery, void, undefined> {
    let before: number | undefined;
    for (;;) {
      const page = await this.page(before);
      yield* page.data;
      if (page.nextCursor === undefined || page.nextCursor === null) return;
      before = page.nextCursor;
    }
  }
}

/** Webhook endpoints of the secret key's project. */
export class Webhooks {
  readonly #http: Http;

  constructor(http: Http) {
    this.#http = http;
  }

  /** The endpoints, oldest first (never their secrets). */
  async list(): Promise<Webhook[]> {
    const list = await this.#http.request<Ok<'listWebhooks'>>('GET', '/v1/webhooks');
    return list.data;
  }

  /** A new endpoint; `secret` (`whsec_…`) is in this answer only. */
  create(options: { url: string; events: string[]; description?: string }): Promise<WebhookWithSecret> {
    const body: Body<'createWebhook'> = { url: options.url, events: options.events };
    if (options.description !== undefined) body.description = options.description;
    return this.#http.request<Ok<'createWebhook'>>('POST', '/v1/webhooks', { json: body });
  }

  /** One endpoint. */
  get(webhookId: string): Promise<Webhook> {
    return this.#http.request<Ok<'getWebhook'>>('GET', `/v1/webhooks/${seg(webhookId)}`);
  }

  /** Changes the URL, event types, description, or enables/disables the endpoint. */
  update(webhookId: string, changes: { url?: string; events?: string[]; description?: string; enabled?: boolean }): Promise<Webhook> {
    const body: Body<'updateWebhook'> = {};
    if (changes.url !== undefined) body.url = changes.url;
    if (changes.events !== undefined) body.events = changes.events;
    if (changes.description !== undefined) body.description = changes.description;
    if (changes.enabled !== undefined) body.enabled = changes.enabled;
    return this.#http.request<Ok<'updateWebhook'>>('PATCH', `/v1/webhooks/${seg(webhookId)}`, { json: body });
  }

  /** Deletes the endpoint and its deliveries. */
  async delete(webhookId: string): Promise<void> {
    await this.#http.request<void>('DELETE', `/v1/webhooks/${seg(webhookId)}`, { as: 'none' });
  }

  /** A new secret now; the old one keeps signing for `overlapSeconds` (default a day). */
  rollSecret(webhookId: string, options: { overlapSeconds?: number } = {}): Promise<WebhookWithSecret> {
    const body: Body<'rollWebhookSecret'> = {};
    if (options.overlapSeconds !== undefined) body.overlapSeconds = options.overlapSeconds;
    return this.#http.request<Ok<'rollWebhookSecret'>>('POST', `/v1/webhooks/${seg(webhookId)}/roll-secret`, { json: body });
  }

  /** The endpoint's deliveries (status, attempts, response status), newest first. */
  deliveries(webhookId: string, options: { pageSize?: number } = {}): DeliveryList {
    return new DeliveryList(this.#http, webhookId, options.pageSize ?? 50);
  }

  /** Makes a delivery due again now. */
  retryDelivery(webhookId: string, deliveryId: string): Promise<Delivery> {
    return this.#http.request<Delivery>('POST', `/v1/webhooks/${seg(webhookId)}/deliveries/${seg(deliveryId)}/retry`);
  }

  /** Sends a signed `webhook.test` event now and reports how the endpoint answered. */
  test(webhookId: string): Promise<TestDelivery> {
    return this.#http.request<Ok<'testWebhook'>>('POST', `/v1/webhooks/${seg(webhookId)}/test`);
  }
}

/** The project's change feed: the same events webhooks deliver, resumable by seq. */
export class Events {
  readonly #http: Http;

  constructor(http: Http) {
    this.#http = http;
  }

  /** Events with a seq above `after`; with `waitSeconds`, an empty page waits for one. */
  list(options: { after?: number; limit?: number; waitSeconds?: number } = {}): Promise<EventPage> {
    const query: Query<'listEvents'> = {};
    if (options.after !== undefined) query.after = options.after;
    if (options.limit !== undefined) query.limit = options.limit;
    if (options.waitSeconds !== undefined) query.wait = options.waitSeconds;
    return this.#http.request<Ok<'listEvents'>>('GET', '/v1/events', { query });
  }

  /**
   * Every event after `after`, forever (long-polling): `for await (const e of
   * tandem.events.follow({ after: saved }))`; save `e.seq` to resume after a restart.
   */
  async *follow(options: { after?: number; signal?: AbortSignal } = {}): AsyncGenerator<ProjectEvent, void, undefined> {
    let after = options.after ?? 0;
    while (!options.signal?.aborted) {
      const page = await this.list({ after, waitSeconds: 30 });
      yield* page.data;
      after = page.nextAfter;
    }
  }
}

/** Headers as Node (`IncomingHttpHeaders`), the Fetch API (`Headers`) or a plain object has them. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** Options of `verifyWebhook`. */
export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** Now, for tests (default `Date.now()`). */
  now?: Date;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

function base64(text: string): Uint8Array<ArrayBuffer> {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function refused(detail: string): TandemError {
  return new TandemError({ code: 'webhook_verification_failed', status: 0, detail });
}

/**
 * Checks a delivery from Tandem (Standard Webhooks): `webhook-signature` must hold a
 * `v1` HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under the endpoint's
 * secret (any one of its space-separated signatures: during a secret roll there are
 * two), and the timestamp must be within the tolerance. Pass the **raw** body (the
 * bytes or text as received, not re-serialized JSON) and one secret, or several while
 * you roll yours. Resolves to the parsed event; throws `TandemError` with code
 * `webhook_verification_failed` otherwise.
 */
export async function verifyWebhook(
  body: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string | string[],
  options: VerifyOptions = {},
): Promise<ProjectEvent> {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) throw refused('missing webhook-id, webhook-timestamp or webhook-signature');
  if (!/^\d+$/.test(timestamp)) throw refused('webhook-timestamp is not a number');
  const tolerance = options.toleranceSeconds ?? 300;
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - Number(timestamp)) > tolerance) throw refused('webhook-timestamp is outside the tolerance');
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + bytes.length);
  signed.set(prefix, 0);
  signed.set(bytes, prefix.length);
  const candidates: Uint8Array<ArrayBuffer>[] = [];
  for (const part of signatures.split(' ')) {
    const [version, value] = part.split(',', 2);
    if (version !== 'v1' || !value) continue;
    try {
      candidates.push(base64(value));
    } catch {
      // not base64: cannot match
    }
  }
  for (const s of Array.isArray(secret) ? secret : [secret]) {
    if (!s.startsWith('whsec_')) throw refused('a webhook secret starts with whsec_');
    const key = await crypto.subtle.importKey('raw', base64(s.slice('whsec_'.length)), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    for (const candidate of candidates) {
      // `verify` compares in constant time.
      if (await crypto.subtle.verify('HMAC', key, candidate, signed)) {
        const text = typeof body === 'string' ? body : new TextDecoder().decode(body);
        return JSON.parse(text) as ProjectEvent;
      }
    }
  }
  throw refused('no signature matches');
}
