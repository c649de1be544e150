/**
 * The thin fetch layer every resource goes through: base URL, bearer credential,
 * JSON and binary bodies, problem+json errors, and the opt-in 429 retry.
 */
import { TandemError, errorFromResponse } from './errors.js';
import type { operations } from './schema.js';

/** How 429 answers are retried (when `retryOn429` is on). */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3). */
  maxAttempts?: number;
  /** A `Retry-After` longer than this (ms) is not waited for: the 429 is thrown (default 60 000). */
  maxDelayMs?: number;
  /** Called before each wait, e.g. to log it. */
  onRetry?: (info: { attempt: number; delayMs: number; error: TandemError }) => void;
}

/** What a request needs. */
export interface CallInit {
  query?: Record<string, string | number | boolean | undefined | null> | undefined;
  json?: unknown;
  bytes?: Uint8Array;
  /** How to read a 2xx body. */
  as?: 'json' | 'bytes' | 'none';
}

type Fetch = typeof globalThis.fetch;

/** The JSON body of an operation's 2xx answer, from the generated spec types. */
export type Ok<K extends keyof operations> = operations[K]['responses'] extends infer R
  ? R extends { 200: { content: { 'application/json': infer B } } }
    ? B
    : R extends { 201: { content: { 'application/json': infer B } } }
      ? B
      : never
  : never;

/** An operation's query parameters. */
export type Query<K extends keyof operations> = NonNullable<operations[K]['parameters']['query']>;

/** An operation's JSON request body. */
export type Body<K extends keyof operations> = operations[K] extends {
  requestBody: { content: { 'application/json': infer B } };
}
  ? B
  : never;

export class Http {
  readonly baseUrl: string;
  readonly #credential: string | undefined;
  readonly #fetch: Fetch;
  readonly #retry: { maxAttempts: number; maxDelayMs: number; onRetry: RetryOptions['onRetry'] | undefined };
  readonly #retryOn429: boolean;

  constructor(options: {
    baseUrl: string;
    credential: string | undefined;
    fetch?: Fetch | undefined;
    retryOn429?: boolean | RetryOptions | undefined;
  }) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#credential = options.credential;
    this.#fetch = options.fetch ?? globalThis.fetch;
    const r = options.retryOn429;
    this.#retryOn429 = r === true || (typeof r === 'object' && r !== null);
    const given = typeof r === 'object' && r !== null ? r : {};
    this.#retry = {
      maxAttempts: Math.max(1, Math.floor(given.maxAttempts ?? 3)),
      maxDelayMs: given.maxDelayMs ?? 60_000,
      onRetry: given.onRetry,
    };
  }

  /** True when this client has a credential (a secret key or a PAT). */
  get hasCredential(): boolean {
    return this.#credential !== undefined;
  }

  async request<T>(method: string, path: string, init: CallInit = {}): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(init.query ?? {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
    if (this.#credential !== undefined) headers.authorization = `Bearer ${this.#credential}`;
    let body: BodyInit | undefined;
    if (init.bytes !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      body = init.bytes as unknown as BodyInit;
    } else if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    }
    if (init.as === 'bytes') headers.accept = 'application/octet-stream, application/problem+json';

    for (let attempt = 1; ; attempt += 1) {
      let response: Response;
      try {
        response = await this.#fetch(url, body === undefined ? { method, headers } : { method, headers, body });
      } catch (cause) {
        throw new TandemError({
          code: 'network',
          status: 0,
          detail: `${method} ${url.pathname}: ${(cause as Error)?.message ?? String(cause)}`,
          cause,
        });
      }
      if (response.ok) return (await read(response, init.as ?? 'json')) as T;
      const error = await errorFromResponse(response);
      if (!this.#retryOn429 || error.status !== 429 || attempt >= this.#retry.maxAttempts) throw error;
      const delayMs = (error.retryAfter ?? 1) * 1000;
      if (delayMs > this.#retry.maxDelayMs) throw error;
      this.#retry.onRetry?.({ attempt, delayMs, error });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

async function read(response: Response, as: 'json' | 'bytes' | 'none'): Promise<unknown> {
  if (as === 'none' || response.status === 204) {
    await response.arrayBuffer().catch(() => undefined);
    return undefined;
  }
  if (as === 'bytes') return new Uint8Array(await response.arrayBuffer());
  return response.json();
}

/** A path segment, percent-encoded (room names may hold `/`, spaces, …). */
export function seg(value: string): string {
  return encodeURIComponent(value);
}
