// The reconnect policy, the same as the Rust SDKs' (protocol/src/client/backoff.rs,
// reconnect.rs and protocol/src/close.rs): full-jitter backoff (250 ms base, 30 s cap,
// reset after sync), the close-code table, the `retry-after=<s>` hint of 4429, and the
// count of tokens refused in a row. Kept as pure functions and a small class so the
// tests can check it case by case against the Rust unit tests.

/** Close codes (DESIGN.md, protocol/src/close.rs). */
export const CLOSE = Object.freeze({
  MALFORMED: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  ROOM_DELETED: 4404,
  TOO_LARGE: 4413,
  RATE_LIMITED: 4429,
  RESTARTING: 1012,
  TRY_AGAIN_LATER: 1013,
});

/** What to do after the server closed a socket with `code`. */
export function closeAction(code) {
  switch (code) {
    case CLOSE.UNAUTHORIZED:
      return 'refresh-token';
    case CLOSE.RATE_LIMITED:
      return 'retry-after';
    case CLOSE.MALFORMED:
    case CLOSE.FORBIDDEN:
    case CLOSE.ROOM_DELETED:
    case CLOSE.TOO_LARGE:
      return 'never';
    default:
      return 'backoff';
  }
}

/** The `retry-after=<seconds>` hint of a close reason, in milliseconds, or undefined. */
export function retryAfterMs(reason) {
  const lower = String(reason ?? '').toLowerCase();
  const at = lower.indexOf('retry-after=');
  if (at < 0) return undefined;
  const match = /^[0-9.]+/.exec(lower.slice(at + 'retry-after='.length));
  if (!match) return undefined;
  const seconds = Number(match[0]);
  if (!Number.isFinite(seconds) || seconds < 0) return undefined;
  return Math.round(seconds * 1000);
}

/** The fatal error code for a close code that must not be retried. */
export function fatalCode(code) {
  switch (code) {
    case CLOSE.MALFORMED:
      return 'malformed';
    case CLOSE.FORBIDDEN:
      return 'forbidden';
    case CLOSE.ROOM_DELETED:
      return 'room_deleted';
    case CLOSE.TOO_LARGE:
      return 'too_large';
    default:
      return 'malformed';
  }
}

export const DEFAULTS = Object.freeze({
  backoffBaseMs: 250,
  backoffCapMs: 30000,
  maxUnauthorized: 3,
  maxRetryAfterMs: 600000,
  connectTimeoutMs: 10000,
  silenceTimeoutMs: 30000,
});

/**
 * The decision after a connection ended: `{ stop: {code, reason} }` or
 * `{ delayMs, refreshToken, notice }`. `random()` returns [0, 1).
 */
export class Reconnect {
  constructor(options = {}, random = Math.random) {
    this.base = Math.max(1, options.backoffBaseMs ?? DEFAULTS.backoffBaseMs);
    this.cap = Math.max(1, options.backoffCapMs ?? DEFAULTS.backoffCapMs);
    this.maxUnauthorized = options.maxUnauthorized ?? DEFAULTS.maxUnauthorized;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULTS.maxRetryAfterMs;
    this.random = random;
    this.attempt = 0;
    this.failures = 0;
    this.unauthorizedStreak = 0;
  }

  /** A sync succeeded, or the app asked to start over. */
  reset() {
    this.attempt = 0;
    this.failures = 0;
    this.unauthorizedStreak = 0;
  }

  windowMs() {
    return Math.min(this.cap, this.base * 2 ** Math.min(this.attempt, 52));
  }

  nextDelayMs() {
    const delay = Math.floor(this.random() * this.windowMs());
    this.attempt += 1;
    return delay;
  }

  /** The connection ended with `code` (`synced`: it had reached "synced"). */
  afterClose(code, reason, synced) {
    let plan;
    switch (closeAction(code)) {
      case 'never':
        return { stop: { code: fatalCode(code), reason } };
      case 'refresh-token':
        plan = this.afterUnauthorized(reason, synced);
        if (plan.stop) return plan;
        break;
      case 'retry-after': {
        const hinted = retryAfterMs(reason);
        const delayMs =
          hinted === undefined
            ? this.nextDelayMs()
            : Math.min(hinted, this.maxRetryAfterMs) + Math.floor(this.random() * this.base);
        plan = { delayMs, refreshToken: false, notice: { code: 'rate_limited', reason, retryAfterMs: delayMs } };
        break;
      }
      default:
        plan = { delayMs: this.nextDelayMs(), refreshToken: false };
    }
    this.failures += 1;
    return plan;
  }

  /** We gave up on a connection ourselves (it never opened, went silent, or no token). */
  afterTimeout() {
    this.failures += 1;
    return { delayMs: this.nextDelayMs(), refreshToken: false };
  }

  afterUnauthorized(reason, synced) {
    this.unauthorizedStreak = synced ? 1 : this.unauthorizedStreak + 1;
    if (this.unauthorizedStreak >= this.maxUnauthorized) {
      return { stop: { code: 'unauthorized', reason, attempts: this.unauthorizedStreak } };
    }
    const delayMs = this.unauthorizedStreak === 1 ? 0 : this.nextDelayMs();
    return { delayMs, refreshToken: true };
  }
}
