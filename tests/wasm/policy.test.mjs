// The package's reconnect policy (policy.js) case by case against the Rust session's
// (protocol/src/client/reconnect.rs and close.rs tests): the JS provider must behave
// exactly as the Rust SDKs do.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { importPackage } from './harness.mjs';

const { Reconnect, closeAction, retryAfterMs, CLOSE } = await importPackage('policy.js');

// Deterministic "randomness": the top of every window, minus one.
const almostOne = () => 0.999999;

describe('reconnect policy (same table as protocol/src/client)', () => {
  test('every documented close code maps to its action', () => {
    assert.equal(closeAction(CLOSE.UNAUTHORIZED), 'refresh-token');
    assert.equal(closeAction(CLOSE.RATE_LIMITED), 'retry-after');
    for (const code of [4400, 4403, 4404, 4413]) assert.equal(closeAction(code), 'never', String(code));
    for (const code of [1012, 1013, 1006, 1001, 1000]) assert.equal(closeAction(code), 'backoff', String(code));
  });

  test('retry-after is read wherever it appears, case-insensitively', () => {
    assert.equal(retryAfterMs('rate limit; retry-after=3'), 3000);
    assert.equal(retryAfterMs('Retry-After=0.5 (plan)'), 500);
    assert.equal(retryAfterMs('rate limit'), undefined);
    assert.equal(retryAfterMs('retry-after=x'), undefined);
  });

  test('the close-code table as plans', () => {
    const r = new Reconnect({}, almostOne);
    assert.deepEqual(r.afterClose(4403, 'x', true).stop.code, 'forbidden');
    const lost = r.afterClose(1013, '', true);
    assert.ok(lost.delayMs < 250 && lost.refreshToken === false);
    assert.deepEqual(r.afterClose(4401, '', true), { delayMs: 0, refreshToken: true });
    const limited = r.afterClose(4429, 'retry-after=2', true);
    assert.ok(limited.delayMs >= 2000 && limited.delayMs < 2250, String(limited.delayMs));
    assert.equal(limited.notice.code, 'rate_limited');
    assert.equal(r.failures, 3);
    r.reset();
    assert.equal(r.failures, 0);
  });

  test('refusals in a row back off, then stop with unauthorized', () => {
    const r = new Reconnect({}, almostOne);
    assert.equal(r.afterClose(4401, 'no', false).delayMs, 0);
    const second = r.afterClose(4401, 'no', false);
    assert.equal(second.refreshToken, true);
    assert.deepEqual(r.afterClose(4401, 'no', false), { stop: { code: 'unauthorized', reason: 'no', attempts: 3 } });
  });

  test('backoff windows double from 250 ms up to the 30 s cap and reset after sync', () => {
    const r = new Reconnect({}, almostOne);
    const delays = Array.from({ length: 10 }, () => r.afterTimeout().delayMs);
    assert.deepEqual(delays, [249, 499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999]);
    r.reset();
    assert.equal(r.afterTimeout().delayMs, 249);
  });

  test('a retry-after hint is capped at ten minutes', () => {
    const r = new Reconnect({}, () => 0);
    assert.equal(r.afterClose(4429, 'retry-after=999999', true).delayMs, 600000);
  });
});
