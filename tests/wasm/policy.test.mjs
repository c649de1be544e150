// The package's reconnect policy (policy.js) case by case against the Rust session's
// (protocol/src/client/reconnect.rs and close.rs tests): the JS provider must behave
// exactly as the Rust SDKs do.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { holdsFor, importPackage, waitFor } from './harness.mjs';

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

// The same policy as the package carries it out, against a fake server (the `ws`
// package) that closes with the codes a Tandem server uses.
describe('the provider follows the policy on the wire', async () => {
  const { WebSocketServer, WebSocket } = await import('ws');
  const { createClient } = await importPackage();

  /** A server that answers each connection with `behave(index, socket, url)`. */
  async function fakeServer(behave) {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.on('listening', r));
    const seen = [];
    wss.on('connection', (socket, req) => {
      seen.push({ at: Date.now(), url: req.url });
      behave(seen.length - 1, socket, req.url);
    });
    return { base: `http://127.0.0.1:${wss.address().port}`, seen, close: () => wss.close() };
  }

  const enter = (base, getToken) => {
    const client = createClient({ baseUrl: base, getToken, WebSocket });
    return client.enterRoom('policy-room', { reconnect: { backoffBaseMs: 50 } });
  };

  test('4429 waits the retry-after of the reason before reconnecting', async () => {
    const server = await fakeServer((i, socket) => i === 0 && socket.close(4429, 'message rate limit; retry-after=1'));
    const room = enter(server.base, () => 't');
    const errors = [];
    room.subscribe('error', (e) => errors.push(e));
    try {
      await waitFor(() => server.seen.length === 2, 'the second connection', 10000);
      const waited = server.seen[1].at - server.seen[0].at;
      assert.ok(waited >= 1000, `reconnected after ${waited} ms`);
      assert.equal(errors[0]?.code, 'rate_limited');
      assert.ok(errors[0].retryAfterMs >= 1000);
    } finally {
      room.destroy();
      server.close();
    }
  });

  test('4401 asks getToken again and reconnects at once; three in a row stop with unauthorized', async () => {
    const server = await fakeServer((_i, socket) => socket.close(4401, 'token expired'));
    let calls = 0;
    const room = enter(server.base, () => `t${(calls += 1)}`);
    try {
      const error = await room.waitUntilSynced(10000).then(() => null, (e) => e);
      assert.equal(error?.code, 'unauthorized');
      assert.equal(error.fatal, true);
      assert.equal(server.seen.length, 3);
      assert.deepEqual(server.seen.map((s) => new URL(s.url, 'http://x').searchParams.get('token')), ['t1', 't2', 't3']);
      assert.ok(server.seen.every((s) => new URL(s.url, 'http://x').searchParams.get('tandem') === '1'), 'opted in');
      assert.equal(room.getStatus(), 'disconnected');
    } finally {
      room.destroy();
      server.close();
    }
  });

  test('losing a synced connection emits lost-connection and reconnects; the server’s step 2 means synced', async () => {
    const server = await fakeServer((i, socket) => {
      // The server's hello for a Tandem server is optional; a sync step 1 (empty state
      // vector) and a step 2 (empty update) make the client synced.
      socket.send(new Uint8Array([0, 0, 1, 0]));
      socket.send(new Uint8Array([0, 1, 2, 0, 0]));
      if (i === 0) socket.on('message', () => socket.close(1013, 'storage unavailable'));
    });
    const room = enter(server.base, () => 't');
    const lost = [];
    room.subscribe('lost-connection', (s) => lost.push(s));
    try {
      await room.waitUntilSynced(5000);
      await waitFor(() => server.seen.length === 2 && room.getStatus() === 'synced', 'synced again on a second socket', 10000);
      assert.deepEqual(lost, ['reconnecting']);
    } finally {
      room.destroy();
      server.close();
    }
  });

  test('4413 stops for good with a typed too_large error; 1013 is retried with backoff', async () => {
    const server = await fakeServer((i, socket) => socket.close(i === 0 ? 1013 : 4413, i === 0 ? 'storage unavailable' : 'document size limit'));
    const room = enter(server.base, () => 't');
    try {
      const error = await room.waitUntilSynced(10000).then(() => null, (e) => e);
      assert.equal(error?.code, 'too_large');
      assert.ok(error instanceof Error && error.name === 'TandemError');
      assert.equal(server.seen.length, 2);
      await holdsFor(() => server.seen.length === 2, 'no reconnect after a fatal close', 500);
    } finally {
      room.destroy();
      server.close();
    }
  });
});
