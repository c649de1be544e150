// 429 handling against the real server with a small per-key REST quota (a plans file:
// 60 requests a minute, so Retry-After is about a second): the typed error by default,
// the opt-in retry that waits Retry-After and then succeeds, and its bounds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { importSdk, startServer } from './harness.mjs';

const { Tandem, TandemError } = await importSdk();
let server;

before(async () => {
  server = await startServer({ plans: '[free]\nrest-requests-per-minute = 60\n' });
});
after(() => server?.stop());

/** Spends the key's quota: requests until one is refused (bounded). */
async function exhaust() {
  for (let i = 0; i < 200; i += 1) {
    const r = await fetch(`${server.base}/v1/rooms`, { headers: { authorization: `Bearer ${server.secret}` } });
    await r.arrayBuffer();
    if (r.status === 429) return;
  }
  throw new Error('no 429 in 200 requests');
}

test('without retryOn429 a 429 is a TandemError with retryAfter', async () => {
  await exhaust();
  const plain = new Tandem({ secretKey: server.secret, baseUrl: server.base });
  const error = await plain.rooms.list().toArray().catch((e) => e);
  assert.ok(error instanceof TandemError);
  assert.equal(error.status, 429);
  assert.equal(error.code, 'rate_limited');
  assert.equal(typeof error.retryAfter, 'number');
  assert.ok(error.retryAfter >= 1 && error.retryAfter <= 60, `retryAfter ${error.retryAfter}`);
});

test('retryOn429 waits Retry-After and the call succeeds', async () => {
  await exhaust();
  const retries = [];
  const patient = new Tandem({
    secretKey: server.secret,
    baseUrl: server.base,
    retryOn429: { maxAttempts: 5, onRetry: (info) => retries.push(info) },
  });
  const rooms = await patient.rooms.list().toArray();
  assert.ok(Array.isArray(rooms));
  assert.ok(retries.length >= 1, 'at least one 429 was retried');
  assert.equal(retries[0].attempt, 1);
  assert.equal(retries[0].error.status, 429);
  assert.equal(retries[0].delayMs, retries[0].error.retryAfter * 1000);
});

test('retryOn429 does not wait longer than maxDelayMs', async () => {
  await exhaust();
  const retries = [];
  const hasty = new Tandem({
    secretKey: server.secret,
    baseUrl: server.base,
    retryOn429: { maxDelayMs: 10, onRetry: (info) => retries.push(info) },
  });
  await assert.rejects(hasty.rooms.get('x'), { name: 'TandemError', status: 429 });
  assert.equal(retries.length, 0);
});

// The attempt bound needs a server that refuses every time: a 20-line stand-in that
// answers each request with the same problem document the real one sends.
test('retryOn429 gives up after maxAttempts', async () => {
  let requests = 0;
  const always429 = createServer((req, res) => {
    requests += 1;
    res.writeHead(429, { 'content-type': 'application/problem+json', 'retry-after': '0' });
    res.end(JSON.stringify({ type: 'urn:tandem:problem:rate_limited', title: 'Too many requests', status: 429, detail: 'slow down', code: 'rate_limited' }));
  });
  await new Promise((r) => always429.listen(0, '127.0.0.1', r));
  try {
    const client = new Tandem({ secretKey: 'sk_x', baseUrl: `http://127.0.0.1:${always429.address().port}`, retryOn429: { maxAttempts: 3 } });
    const error = await client.rooms.get('x').catch((e) => e);
    assert.ok(error instanceof TandemError);
    assert.equal(error.retryAfter, 0);
    assert.equal(error.detail, 'slow down');
    assert.equal(requests, 3);
    requests = 0;
    const defaults = new Tandem({ secretKey: 'sk_x', baseUrl: `http://127.0.0.1:${always429.address().port}`, retryOn429: true });
    await assert.rejects(defaults.keys.list(), { status: 429 });
    assert.equal(requests, 3);
  } finally {
    always429.close();
  }
});
