/**
 * Errors: every failed call throws a `TandemError` built from the server's RFC 9457
 * problem document (`application/problem+json`), so callers switch on a stable `code`.
 */
import type { components } from './schema.js';

/** The problem document the server sends with every error. */
export type Problem = components['schemas']['Problem'];

/** A failed Tandem call: an HTTP error answer, or a network failure (`status` 0). */
export class TandemError extends Error {
  /** A stable machine-readable code (`not_found`, `unauthorized`, `rate_limited`, …). */
  readonly code: string;
  /** The HTTP status (0 when no answer arrived). */
  readonly status: number;
  /** What went wrong this time, for humans. */
  readonly detail: string;
  /** Seconds to wait before retrying, from `Retry-After` (429 and 503), else undefined. */
  readonly retryAfter: number | undefined;
  /** The request id the server gave the answer (`x-request-id`), for support. */
  readonly requestId: string | undefined;
  /** The whole problem document, when the server sent one. */
  readonly problem: Problem | undefined;

  constructor(init: {
    code: string;
    status: number;
    detail: string;
    retryAfter?: number;
    requestId?: string;
    problem?: Problem;
    cause?: unknown;
  }) {
    super(`${init.code} (${init.status}): ${init.detail}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'TandemError';
    this.code = init.code;
    this.status = init.status;
    this.detail = init.detail;
    this.retryAfter = init.retryAfter;
    this.requestId = init.requestId;
    this.problem = init.problem;
  }
}

/** `Retry-After` as seconds: delta-seconds or an HTTP date; undefined when absent or bad. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

function isProblem(value: unknown): value is Problem {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.code === 'string' && typeof v.status === 'number';
}

/** Builds the error for a non-2xx answer (reads its body). */
export async function errorFromResponse(response: Response): Promise<TandemError> {
  const text = await response.text().catch(() => '');
  let problem: Problem | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (isProblem(parsed)) problem = parsed;
  } catch {
    // Not JSON (a proxy's error page, say): described by the status below.
  }
  const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
  return new TandemError({
    code: problem?.code ?? `http_${response.status}`,
    status: response.status,
    detail: problem?.detail ?? (text.slice(0, 200) || response.statusText),
    ...(retryAfter === undefined ? {} : { retryAfter }),
    ...(response.headers.get('x-request-id') ? { requestId: response.headers.get('x-request-id') as string } : {}),
    ...(problem ? { problem } : {}),
  });
}
