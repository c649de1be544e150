/**
 * Client tokens: `authorize` mints one (POST /v1/tokens), and the auth-endpoint
 * handlers answer the client SDK's `authEndpoint` (`POST {"room"}` → `{"token"}`).
 */
import { TandemError } from './errors.js';
import { Http, type Body, type Ok } from './http.js';
import type { Permissions } from './types.js';

/** What a token is for. */
export interface AuthorizeOptions {
  /** Your app's id for the user (shown with their presence). */
  userId: string;
  /** Shown to others with the user's presence, e.g. `{ name: 'Ada', color: '#f0a' }` (≤ 4 KiB). */
  userInfo?: Record<string, unknown>;
  /** Room name (exact) or prefix ending in `*` → scopes. */
  permissions: Permissions;
  /** Lifetime in seconds (default 3600, at most the server's maximum). */
  expiresIn?: number;
}

/** A minted token. */
export interface Authorization {
  token: string;
  /** When it expires (RFC 3339). */
  expiresAt: string;
  projectId: string;
}

export async function authorize(http: Http, options: AuthorizeOptions): Promise<Authorization> {
  const body: Body<'createToken'> = { userId: options.userId, permissions: options.permissions };
  if (options.userInfo !== undefined) body.userInfo = options.userInfo;
  if (options.expiresIn !== undefined) body.expiresIn = options.expiresIn;
  const created = await http.request<Ok<'createToken'>>('POST', '/v1/tokens', { json: body });
  return { token: created.token, expiresAt: created.expiresAt, projectId: created.projectId };
}

/** What the auth callback is given: the room the client asks for, and the request. */
export interface AuthRequest<R> {
  /** The room the client SDK wants to enter. */
  room: string;
  /** The framework's request (Express/Node `req`, or a Fetch `Request`), for cookies and sessions. */
  request: R;
}

/**
 * Who the caller is, or `null` to refuse (403). `permissions` defaults to
 * `{ [room]: ['room:write'] }`.
 */
export type AuthDecision = Omit<AuthorizeOptions, 'permissions'> & { permissions?: Permissions };

export type AuthCallback<R> = (input: AuthRequest<R>) => AuthDecision | null | Promise<AuthDecision | null>;

/** The parts of a Node/Express request the handler reads. */
export interface NodeRequestLike extends AsyncIterable<unknown> {
  method?: string | undefined;
  /** Set by body parsers such as `express.json()`. */
  body?: unknown;
}

/** The parts of a Node/Express response the handler writes. */
export interface NodeResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(chunk?: string): unknown;
}

const MAX_BODY = 16 * 1024;

/** Runs the callback and mints the token; answers [status, JSON body]. */
async function decide<R>(http: Http, callback: AuthCallback<R>, request: R, body: unknown): Promise<[number, unknown]> {
  const room = typeof body === 'object' && body !== null ? (body as { room?: unknown }).room : undefined;
  if (typeof room !== 'string' || room === '') {
    return [400, { code: 'invalid_request', detail: 'expected a JSON body {"room": "<name>"}' }];
  }
  const decision = await callback({ room, request });
  if (decision === null || decision === undefined) return [403, { code: 'forbidden', detail: 'not allowed' }];
  try {
    const minted = await authorize(http, {
      ...decision,
      permissions: decision.permissions ?? { [room]: ['room:write'] },
    });
    return [200, minted];
  } catch (error) {
    if (error instanceof TandemError && error.status >= 400 && error.status < 500 && error.status !== 401) {
      return [error.status, { code: error.code, detail: error.detail }];
    }
    // A bad secret key or an unreachable server is the app's problem, not the browser's.
    return [502, { code: 'token_unavailable', detail: 'could not mint a token' }];
  }
}

async function readJson(req: NodeRequestLike): Promise<unknown> {
  if (req.body !== undefined) {
    if (typeof req.body === 'string') return JSON.parse(req.body);
    if (req.body instanceof Uint8Array) return JSON.parse(new TextDecoder().decode(req.body));
    return req.body;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req) {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : (chunk as Uint8Array);
    size += bytes.byteLength;
    if (size > MAX_BODY) throw new RangeError('body too large');
    chunks.push(bytes);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return JSON.parse(new TextDecoder().decode(all));
}

/** An Express / Node `http` / Next.js pages-API handler: `app.post('/api/tandem-auth', handler)`. */
export function nodeHandler<R extends NodeRequestLike>(
  http: Http,
  callback: AuthCallback<R>,
): (req: R, res: NodeResponseLike) => Promise<void> {
  return async (req, res) => {
    let status: number;
    let payload: unknown;
    if (req.method !== undefined && req.method !== 'POST') {
      [status, payload] = [405, { code: 'method_not_allowed', detail: 'use POST' }];
    } else {
      let body: unknown;
      try {
        body = await readJson(req);
      } catch {
        body = undefined;
      }
      [status, payload] = await decide(http, callback, req, body);
    }
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'no-store');
    res.end(JSON.stringify(payload));
  };
}

/** A Fetch-API handler (Next.js route handlers, Hono, Deno, Bun, workers): `export const POST = handler`. */
export function fetchHandler(http: Http, callback: AuthCallback<Request>): (request: Request) => Promise<Response> {
  return async (request) => {
    let status: number;
    let payload: unknown;
    if (request.method !== 'POST') {
      [status, payload] = [405, { code: 'method_not_allowed', detail: 'use POST' }];
    } else {
      const text = await request.text();
      let body: unknown;
      try {
        body = text.length > MAX_BODY ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      [status, payload] = await decide(http, callback, request, body);
    }
    return new Response(JSON.stringify(payload), {
      status,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  };
}
